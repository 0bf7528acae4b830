"""Two engines for the same protocol: jaxmlp (a grid of configs as one compiled, vmapped program) and torchref.

Both see the same normalised arrays, the same initial weights and the same
batches (`epoch_order`), and report the same per-epoch metrics:
``(train_loss, train_accuracy, val_loss, val_accuracy)`` per config, train
metrics averaged over the epoch's steps, validation metrics after the epoch.
A backend trains a *unit* (a list of configs) epoch by epoch and can snapshot
and restore it, so an interrupted run resumes exactly where it stopped.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import torch
from jax.sharding import NamedSharding, PartitionSpec

import jaxmlp as jm
import torchref as tr
from experiments.settings import Config, Settings, SettingsError
from experiments.splits import Splits

Weights = list[tuple[np.ndarray, np.ndarray]]
LOSS = "cross_entropy"


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of ``epoch`` (1-based) when shuffling: a permutation seeded by ``(seed, epoch)``.

    Derived from the epoch number alone, so a resumed run visits the same batches.
    """
    return np.random.default_rng([seed, epoch]).permutation(n)


# ------------------------------------------------------------------ JAX


def _grid_epoch(spec: jm.MLPSpec, opt: jm.SGD, state: jm.TrainState, batches: jm.Batches,
                x_val: jax.Array, y_val: jax.Array) -> tuple[jm.TrainState, jax.Array]:
    """One epoch of every config (leading axis of ``opt`` and ``state``), then each one's validation metrics."""

    def one_config(opt: jm.SGD, state: jm.TrainState) -> tuple[jm.TrainState, jax.Array]:
        state, train = jm.train_epoch(spec, LOSS, opt, state, batches)
        val = jm.evaluate(spec, LOSS, state.params, x_val, y_val)
        return state, jnp.stack([train.loss, train.accuracy, val.loss, val.accuracy]).astype(jnp.float64)

    return jax.vmap(one_config)(opt, state)


_grid_epoch_jit = jax.jit(_grid_epoch, static_argnums=0, donate_argnums=2)
_make_batches_jit = jax.jit(jm.make_batches, static_argnums=2)


class JaxBackend:
    """jaxmlp: data placed on the device once; each unit's epoch is one compiled call.

    Args:
        parallel: ``"configs"`` shards the config axis over all devices (padding it
            to a multiple of the device count); ``"data"`` shards every batch instead
            (data parallelism). With one device both are the same single-device program.
    """

    name = "jax"

    def __init__(self, splits: Splits, settings: Settings, parallel: str = "configs") -> None:
        if parallel not in ("configs", "data"):
            raise ValueError(f"parallel must be 'configs' or 'data', got {parallel!r}.")
        if settings.dtype == "float64" and not jax.config.jax_enable_x64:
            raise SettingsError("float64 needs JAX's x64 mode: set JAX_ENABLE_X64=1 before JAX is imported "
                             "(python -m experiments.cifar2 does), or use --dtype float32.")
        self.settings, self.parallel = settings, parallel
        self.dtype = jnp.dtype(settings.dtype)
        self.devices = jax.devices()
        replicated = NamedSharding(jax.sharding.Mesh(np.asarray(self.devices), ("d",)), PartitionSpec())
        x_train, y_train = splits.x_train.astype(self.dtype, copy=False), splits.y_train
        self.n_train = len(y_train)
        self.x_val = jax.device_put(splits.x_val.astype(self.dtype, copy=False), replicated)
        self.y_val = jax.device_put(splits.y_val, replicated)
        if settings.shuffle:  # keep the whole set on the device, cut each epoch's batches there
            self.x_train, self.y_train = jax.device_put((x_train, y_train), replicated)
            self._fixed_batches = None
        else:  # cut once on the host (NumPy views, no copy), then one transfer
            self._fixed_batches = self._place(jax.device_put(jm.make_batches(x_train, y_train, settings.batch_size), replicated))

    @property
    def engine(self) -> str:
        return "jax"

    @property
    def unit_size(self) -> int | None:
        return None  # the whole grid (per Nesterov setting) in one program

    def _place(self, batches: jm.Batches) -> jm.Batches:
        if self.parallel != "data" or len(self.devices) == 1:
            return batches
        n = len(self.devices)
        if self.settings.batch_size % n or batches.x_rest.shape[0] % n:
            raise ValueError(
                f"data parallelism over {n} devices needs the batch size ({self.settings.batch_size}) and the last "
                f"batch ({batches.x_rest.shape[0]}) to be multiples of {n}; change --batch-size or use --parallel configs."
            )
        split = jm.grid.batch_sharding(self.devices)
        rest = NamedSharding(split.mesh, PartitionSpec("batch"))
        return jm.Batches(jax.device_put(batches.x, split), jax.device_put(batches.y, split),
                          jax.device_put(batches.x_rest, rest), jax.device_put(batches.y_rest, rest))

    def batches(self, epoch: int) -> jm.Batches:
        if self._fixed_batches is not None:
            return self._fixed_batches
        order = jnp.asarray(epoch_order(self.settings.seed, epoch, self.n_train))
        return self._place(_make_batches_jit(self.x_train, self.y_train, self.settings.batch_size, order))

    def start(self, spec: jm.MLPSpec, configs: Sequence[Config], weights: Weights) -> dict[str, Any]:
        params = jm.params_from_numpy(weights, self.dtype)
        state = jm.replicate(jm.init_train_state(params), len(configs))
        return self._assemble(spec, configs, state)

    def _assemble(self, spec: jm.MLPSpec, configs: Sequence[Config], state: jm.TrainState) -> dict[str, Any]:
        opt = jm.stack_configs([jm.SGD(**c.sgd_kwargs()) for c in configs])
        n_real = len(configs)
        if self.parallel == "configs" and len(self.devices) > 1:
            (opt, state), _ = jm.grid.pad_configs((opt, state), len(self.devices))
            sharding = jm.grid.config_sharding(self.devices)
            opt, state = jax.device_put((opt, state), sharding)
        return {"spec": spec, "opt": opt, "state": state, "n": n_real}

    def run_epoch(self, unit: dict[str, Any], epoch: int) -> np.ndarray:
        unit["state"], metrics = _grid_epoch_jit(unit["spec"], unit["opt"], unit["state"], self.batches(epoch), self.x_val, self.y_val)
        return np.asarray(metrics)[: unit["n"]]

    def snapshot(self, unit: dict[str, Any]) -> dict[str, np.ndarray]:
        return {f"leaf{i}": np.asarray(a)[: unit["n"]] for i, a in enumerate(jax.tree.leaves(unit["state"]))}

    def restore(self, spec: jm.MLPSpec, configs: Sequence[Config], weights: Weights, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        template = jm.init_train_state(jm.params_from_numpy(weights, self.dtype))
        leaves = [jnp.asarray(arrays[f"leaf{i}"]) for i in range(len(jax.tree.leaves(template)))]
        return self._assemble(spec, configs, jax.tree.unflatten(jax.tree.structure(template), leaves))

    def final_weights(self, unit: dict[str, Any], i: int) -> Weights:
        return [(np.asarray(layer.W[i]), np.asarray(layer.b[i])) for layer in unit["state"].params]

    def predict(self, spec: jm.MLPSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
        return np.asarray(jm.forward(spec, jm.params_from_numpy(weights, self.dtype), jnp.asarray(x, self.dtype)))


# ------------------------------------------------------------------ PyTorch


class TensorBatches:
    """Mini-batches of ``x``, ``y`` in ``order`` (or as stored), the last one possibly smaller: a light DataLoader."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, order: np.ndarray | None = None) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        self.order = None if order is None else torch.as_tensor(order)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self.y), self.batch_size):
            if self.order is None:
                yield self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]
            else:
                idx = self.order[start:start + self.batch_size]
                yield self.x[idx], self.y[idx]


class TorchBackend:
    """torchref: one config at a time, ``torch.optim.SGD`` on a `torchref.MyMLP`."""

    name = "torch"

    def __init__(self, splits: Splits, settings: Settings) -> None:
        self.settings = settings
        self.dtype = getattr(torch, settings.dtype)
        self.x_train = torch.as_tensor(splits.x_train).to(self.dtype)
        self.y_train = torch.as_tensor(splits.y_train)
        self.val = TensorBatches(torch.as_tensor(splits.x_val).to(self.dtype), torch.as_tensor(splits.y_val), settings.batch_size)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    @property
    def engine(self) -> str:
        return "torch"

    @property
    def unit_size(self) -> int | None:
        return 1

    def batches(self, epoch: int) -> TensorBatches:
        order = epoch_order(self.settings.seed, epoch, len(self.y_train)) if self.settings.shuffle else None
        return TensorBatches(self.x_train, self.y_train, self.settings.batch_size, order)

    def _model(self, spec: jm.MLPSpec, weights: Weights) -> tr.MyMLP:
        if spec != jm.MLPSpec.mlp(spec.sizes):
            raise ValueError(f"the torch backend runs ReLU MLPs with a linear output only, got {spec}.")
        model = tr.MyMLP(spec.sizes).to(self.dtype)
        tr.load_numpy_params(model, weights)
        return model

    def start(self, spec: jm.MLPSpec, configs: Sequence[Config], weights: Weights) -> dict[str, Any]:
        (config,) = configs
        model = self._model(spec, weights)
        return {"model": model, "opt": torch.optim.SGD(model.parameters(), **config.sgd_kwargs())}

    def run_epoch(self, unit: dict[str, Any], epoch: int) -> np.ndarray:
        train_loss, train_acc = tr.train_epoch(unit["model"], self.loss_fn, self.batches(epoch), unit["opt"].step)
        val_loss, val_acc = tr.evaluate(unit["model"], self.loss_fn, self.val)
        return np.array([[train_loss, train_acc, val_loss, val_acc]])

    def snapshot(self, unit: dict[str, Any]) -> dict[str, np.ndarray]:
        arrays = {}
        for i, p in enumerate(unit["model"].parameters()):
            arrays[f"param{i}"] = p.detach().numpy().copy()
            buf = unit["opt"].state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                arrays[f"buf{i}"] = buf.numpy().copy()
        return arrays

    def restore(self, spec: jm.MLPSpec, configs: Sequence[Config], weights: Weights, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        unit = self.start(spec, configs, weights)
        with torch.no_grad():
            for i, p in enumerate(unit["model"].parameters()):
                p.copy_(torch.as_tensor(arrays[f"param{i}"]))
                if f"buf{i}" in arrays:
                    unit["opt"].state[p]["momentum_buffer"] = torch.as_tensor(arrays[f"buf{i}"]).clone()
        return unit

    def final_weights(self, unit: dict[str, Any], i: int) -> Weights:
        return tr.numpy_params(unit["model"])

    def predict(self, spec: jm.MLPSpec, weights: Weights, x: np.ndarray) -> np.ndarray:
        model = self._model(spec, weights)
        with torch.no_grad():
            return model(torch.as_tensor(x).to(self.dtype)).numpy()


def make_backend(splits: Splits, settings: Settings, parallel: str = "configs") -> JaxBackend | TorchBackend:
    return JaxBackend(splits, settings, parallel) if settings.backend == "jax" else TorchBackend(splits, settings)

