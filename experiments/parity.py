"""Cross-framework parity: the same initial weights and batches through four training implementations.

``python -m experiments.parity`` prints, for every SGD config, the largest
relative parameter difference seen over all steps between jaxmlp
(`loss_and_grads` + `sgd_update`) and each of: ``torch.optim.SGD`` (through
`torchref.train`), `torchref.train_manual_update`, and optax
(``chain(add_decayed_weights, sgd)``, where optax has the feature), plus the
gradient differences on the first batch. Everything runs in float64.
"""

from __future__ import annotations

import argparse
import os
from typing import Callable, Iterator, Sequence

os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402

import jaxmlp as jm  # noqa: E402
import torchref as tr  # noqa: E402

Weights = list[tuple[np.ndarray, np.ndarray]]

STUDY_GRID = [(0.0, 0.0), (0.01, 0.0), (0.9, 0.0), (0.0, 0.01), (0.0, 0.9), (0.01, 0.9), (0.9, 0.01)]
"""The study's (weight_decay, momentum) pairs, all at lr 0.01."""


def trajectory_configs(lr: float = 0.01) -> list[dict]:
    """The study's grid plus Nesterov, dampening and maximize: the configs every parity run covers."""
    configs = [dict(lr=lr, weight_decay=wd, momentum=m) for wd, m in STUDY_GRID]
    configs += [
        dict(lr=lr, momentum=0.9, nesterov=True),
        dict(lr=lr, momentum=0.9, dampening=0.1),
        dict(lr=lr, momentum=0.9, weight_decay=0.01, maximize=True),
    ]
    return configs


def initial_weights(sizes: Sequence[int] = jm.CIFAR2_SPEC.sizes, seed: int = 265) -> Weights:
    """``torch.manual_seed(seed); MyMLP(sizes)`` in float64, exported as ``[(W, b), ...]``."""
    torch.manual_seed(seed)
    return tr.numpy_params(tr.MyMLP(sizes).double())


def synthetic_batches(n_steps: int, batch: int, n_in: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_steps`` batches of standard-normal inputs and balanced-at-random binary labels, made in NumPy."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(batch, n_in)), rng.integers(0, 2, batch)) for _ in range(n_steps)]


def max_relative_difference(a: Weights, b: Weights) -> float:
    """``max over parameters of max|a - b| / max|b|``."""
    return max(float(np.abs(pa - pb).max() / np.abs(pb).max()) for la, lb in zip(a, b) for pa, pb in zip(la, lb))


def jaxmlp_trajectory(spec: jm.MLPSpec, weights: Weights, batches, config: dict) -> list[Weights]:
    """Parameters after every step of ``loss_and_grads`` + ``sgd_update``."""
    opt = jm.SGD(**config)
    params = jm.params_from_numpy(weights)
    state = jm.sgd_init(params)
    update = jax.jit(jm.sgd_update)
    snapshots = []
    for x, y in batches:
        _, grads = jm.loss_and_grads(spec, params, jnp.asarray(x), jnp.asarray(y))
        params, state = update(opt, grads, state, params)
        snapshots.append(jm.params_to_numpy(params))
    return snapshots


def optax_trajectory(spec: jm.MLPSpec, weights: Weights, batches, config: dict) -> list[Weights] | None:
    """``jax.grad`` + ``optax.chain(add_decayed_weights(wd), sgd(lr, momentum, nesterov))``; None when optax
    cannot express the config (it has no dampening and no maximize)."""
    if config.get("dampening", 0.0) or config.get("maximize", False):
        return None
    tx = optax.chain(
        optax.add_decayed_weights(config.get("weight_decay", 0.0)),
        optax.sgd(config["lr"], config.get("momentum", 0.0), config.get("nesterov", False)),
    )
    params = jm.params_from_numpy(weights)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        grads = jax.grad(jm.loss_value, argnums=1)(spec, params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    snapshots = []
    for x, y in batches:
        params, opt_state = step(params, opt_state, jnp.asarray(x), jnp.asarray(y))
        snapshots.append(jm.params_to_numpy(params))
    return snapshots


def _recording_loader(model: torch.nn.Module, batches, record: Callable[[Weights], None]) -> Iterator:
    """Yield the batches; each time the loop asks for the next one, its last update is done: record the weights."""
    for i, (x, y) in enumerate(batches):
        if i:
            record(tr.numpy_params(model))
        yield torch.as_tensor(x), torch.as_tensor(y)
    record(tr.numpy_params(model))


def torch_trajectory(sizes: Sequence[int], weights: Weights, batches, config: dict, manual: bool) -> list[Weights] | None:
    """Parameters after every step of `torchref.train` (``torch.optim.SGD``) or, with ``manual``,
    `torchref.train_manual_update` (None for ``maximize``, which it does not offer)."""
    if manual and config.get("maximize", False):
        return None
    model = tr.MyMLP(sizes).double()
    tr.load_numpy_params(model, weights)
    snapshots: list[Weights] = []
    loader = _recording_loader(model, batches, snapshots.append)
    val = [(torch.as_tensor(batches[0][0]), torch.as_tensor(batches[0][1]))]
    loss_fn = torch.nn.CrossEntropyLoss()
    if manual:
        kwargs = {k: v for k, v in config.items() if k != "lr"}
        tr.train_manual_update(1, config["lr"], model, loss_fn, loader, val, **kwargs)
    else:
        tr.train(1, torch.optim.SGD(model.parameters(), **config), model, loss_fn, loader, val)
    return snapshots


def trajectory_differences(config: dict, weights: Weights, batches, spec: jm.MLPSpec = jm.CIFAR2_SPEC) -> dict:
    """For one config: the largest relative parameter difference to jaxmlp over all steps, per implementation."""
    reference = jaxmlp_trajectory(spec, weights, batches, config)
    others = {
        "torch.optim.SGD": torch_trajectory(spec.sizes, weights, batches, config, manual=False),
        "train_manual_update": torch_trajectory(spec.sizes, weights, batches, config, manual=True),
        "optax": optax_trajectory(spec, weights, batches, config),
    }
    result = {"steps": len(reference)}
    for name, trajectory in others.items():
        if trajectory is None:
            result[name] = None
            continue
        assert len(trajectory) == len(reference), f"{name} took {len(trajectory)} steps, jaxmlp {len(reference)}"
        result[name] = max(max_relative_difference(a, b) for a, b in zip(trajectory, reference))
    return result


def gradient_differences(weights: Weights, x: np.ndarray, y: np.ndarray, spec: jm.MLPSpec = jm.CIFAR2_SPEC) -> dict:
    """Relative gradient differences (max over parameters of ``||a - b|| / ||b||``) on one batch."""
    params = jm.params_from_numpy(weights)
    _, hand = jm.loss_and_grads(spec, params, jnp.asarray(x), jnp.asarray(y))
    autodiff = jax.grad(jm.loss_value, argnums=1)(spec, params, jnp.asarray(x), jnp.asarray(y))
    model = tr.MyMLP(spec.sizes).double()
    tr.load_numpy_params(model, weights)
    torch.nn.functional.cross_entropy(model(torch.as_tensor(x)), torch.as_tensor(y)).backward()
    autograd = [(m.weight.grad.numpy(), m.bias.grad.numpy()) for m in tr.linear_layers(model)]

    def rel(a: Weights, b: Weights) -> float:
        return max(float(np.linalg.norm(pa - pb) / np.linalg.norm(pb)) for la, lb in zip(a, b) for pa, pb in zip(la, lb))

    hand_np = jm.params_to_numpy(hand)
    return {"jax.grad": rel(hand_np, jm.params_to_numpy(autodiff)), "torch autograd": rel(hand_np, autograd)}


def _describe(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items() if k != "lr" and v) or "plain SGD"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps per config (default 20)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    args = parser.parse_args(argv)
    if not jax.config.jax_enable_x64:
        raise SystemExit("experiments.parity needs float64: run it with JAX_ENABLE_X64=1 (the default when run directly).")
    weights = initial_weights()
    batches = synthetic_batches(args.steps, args.batch, jm.CIFAR2_SPEC.sizes[0])
    grads = gradient_differences(weights, *batches[0])
    print(f"Gradients on one batch of {args.batch}, 3072-512-128-32-2, float64 (relative to jaxmlp's hand-written backward):")
    for name, value in grads.items():
        print(f"  {name:<16} {value:.2e}")
    print(f"\nTrajectories: max relative parameter difference to jaxmlp over {args.steps} steps, lr 0.01")
    names = ["torch.optim.SGD", "train_manual_update", "optax"]
    print(f"  {'config':<42}" + "".join(f"{n:>22}" for n in names))
    worst = 0.0
    for config in trajectory_configs():
        diffs = trajectory_differences(config, weights, batches)
        cells = [f"{diffs[n]:>22.2e}" if diffs[n] is not None else f"{'(no such option)':>22}" for n in names]
        worst = max([worst] + [diffs[n] for n in names if diffs[n] is not None])
        print(f"  {_describe(config):<42}" + "".join(cells))
    print(f"\nLargest trajectory difference: {worst:.2e}")


if __name__ == "__main__":
    main()
