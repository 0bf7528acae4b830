"""Fully connected layers: parameters, initialisation, and the affine map beside its backward rule.

Parameters are a plain tuple of ``Layer(W, b)`` NamedTuples, a pytree that
``jit``, ``vmap``, ``grad`` and optax all understand. ``W`` is ``(n_out, n_in)``
exactly like ``torch.nn.Linear.weight``, so weights cross frameworks untransposed.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.spec import MLPSpec

Array = jax.Array


class Layer(NamedTuple):
    """One affine layer: ``W: (n_out, n_in)``, ``b: (n_out,)``."""

    W: Array
    b: Array


Params = tuple[Layer, ...]


def init_params(spec: MLPSpec, key: Array, dtype: jnp.dtype = jnp.float32) -> Params:
    """Draw ``W`` and ``b`` from ``U(-1/sqrt(n_in), 1/sqrt(n_in))``, the law of torch's default init.

    Same law, not the same numbers: to start both frameworks from identical
    weights, create them once and exchange them with `params_to_numpy` /
    `params_from_numpy`.
    """
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"init_params: dtype must be a floating type such as float32 or float64, got {dtype}.")
    keys = jax.random.split(key, spec.n_layers)
    return tuple(
        _init_layer(k, n_in, n_out, dtype) for k, n_in, n_out in zip(keys, spec.sizes[:-1], spec.sizes[1:])
    )


def _init_layer(key: Array, n_in: int, n_out: int, dtype: jnp.dtype) -> Layer:
    bound = 1.0 / np.sqrt(n_in)
    k_w, k_b = jax.random.split(key)
    return Layer(
        W=jax.random.uniform(k_w, (n_out, n_in), dtype, -bound, bound),
        b=jax.random.uniform(k_b, (n_out,), dtype, -bound, bound),
    )


def affine(layer: Layer, a_prev: Array) -> Array:
    """``z[l] = a[l-1] W[l]^T + b[l]``; ``a_prev: (batch, n_in)`` -> ``(batch, n_out)``."""
    return a_prev @ layer.W.T + layer.b


def affine_backward(layer: Layer, a_prev: Array, delta: Array, input_grad: bool) -> tuple[Layer, Array | None]:
    """Backward rule of `affine`, given the local gradient ``delta[l] = dL/dz[l]: (batch, n_out)``.

    ``dL/dW[l] = delta[l]^T a[l-1]``, ``dL/db[l] = sum_batch delta[l]`` and
    ``dL/da[l-1] = delta[l] W[l]``; the last product is skipped when
    ``input_grad`` is False (nobody needs the gradient with respect to the images).
    """
    grads = Layer(W=delta.T @ a_prev, b=delta.sum(axis=0))
    return grads, (delta @ layer.W if input_grad else None)


def params_to_numpy(params: Params) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W, b), ...]`` as NumPy arrays, the exchange format shared with ``torchref``."""
    return [(np.asarray(layer.W), np.asarray(layer.b)) for layer in params]


def params_from_numpy(weights: Sequence[tuple[np.ndarray, np.ndarray]], dtype: jnp.dtype | None = None) -> Params:
    """Parameters from ``[(W, b), ...]``; ``dtype=None`` keeps the arrays' own dtype."""
    params = []
    for i, pair in enumerate(weights):
        if len(pair) != 2:
            raise ValueError(f"params_from_numpy: entry {i} must be a pair (W, b), got {len(pair)} items.")
        W, b = (np.asarray(v) for v in pair)
        if W.ndim != 2 or b.shape != (W.shape[0],):
            raise ValueError(
                f"params_from_numpy: layer {i + 1} has W {W.shape} and b {b.shape}; "
                "expected W (n_out, n_in) and b (n_out,), the torch.nn.Linear layout."
            )
        params.append(Layer(jnp.asarray(W, dtype), jnp.asarray(b, dtype)))
    return tuple(params)
