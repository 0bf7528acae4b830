"""Shared builders for the tests: random specs, weights and batches made in NumPy, fed to both frameworks."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import torch

import jaxmlp as jm
import torchref as tr


def random_weights(sizes: tuple[int, ...], rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """float64 ``[(W, b), ...]`` from torch's init law ``U(-1/sqrt(n_in), 1/sqrt(n_in))``."""
    weights = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(n_in)
        weights.append((rng.uniform(-bound, bound, (n_out, n_in)), rng.uniform(-bound, bound, n_out)))
    return weights


def random_batch(spec: jm.MLPSpec, loss: str, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``x: (batch, n_0)`` standard normal and labels (cross-entropy) or targets (squared errors)."""
    x = rng.normal(size=(batch, spec.sizes[0]))
    if loss == "cross_entropy":
        return x, rng.integers(0, spec.sizes[-1], batch)
    return x, rng.normal(size=(batch, spec.sizes[-1]))


def torch_loss(loss: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The PyTorch counterpart of each jaxmlp loss."""
    if loss == "cross_entropy":
        return torch.nn.functional.cross_entropy(out, y)
    if loss == "mse":
        return torch.nn.MSELoss()(out, y)
    return torch.nn.MSELoss(reduction="none")(out, y).sum()


def mynet(spec: jm.MLPSpec, weights: list[tuple[np.ndarray, np.ndarray]]) -> tr.MyNet:
    """A float64 `torchref.MyNet` with the spec's activations and the given weights."""
    net = tr.MyNet(spec.sizes, spec.activations).double()
    tr.load_numpy_params(net, weights)
    return net


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / ||b||`` (0 when both are exactly 0)."""
    a, b = np.asarray(a), np.asarray(b)
    denom = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else float(np.linalg.norm(a))


def max_rel_err(grads_a, grads_b) -> float:
    """Largest `rel_err` over the parameters of two ``[(W, b), ...]`` gradient lists."""
    return max(rel_err(ga, gb) for la, lb in zip(grads_a, grads_b) for ga, gb in zip(la, lb))


def as_jax(x: np.ndarray, y: np.ndarray):
    return jnp.asarray(x), jnp.asarray(y)
