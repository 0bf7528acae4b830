"""A hyperparameter grid as one program: configs stacked on a leading axis, ``vmap``ped, optionally sharded.

All configs share the architecture and the data; only the `SGD` leaves differ.
Stacking them as arrays makes the grid a ``vmap`` over the config axis (and
changing values never recompiles). With several devices the config axis is
padded to a multiple of the device count and split with a ``NamedSharding``;
configs are independent, so no collective communication is needed.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxmlp.optim import SGD

Array = jax.Array


def stack_configs(opts: Sequence[SGD]) -> SGD:
    """One `SGD` whose hyperparameters are arrays ``(n_configs,)``; ``nesterov``/``maximize`` must agree.

    The arrays are float64 when x64 is on (float32 otherwise); `sgd_update`
    casts them to each parameter's dtype.
    """
    if not opts:
        raise ValueError("stack_configs needs at least one SGD config.")
    static = {(o.nesterov, o.maximize) for o in opts}
    if len(static) != 1:
        raise ValueError(
            "configs of one grid must share nesterov and maximize (they change the compiled program); "
            f"got {sorted(static)}: run one grid per combination."
        )
    return jax.tree.map(lambda *values: jnp.asarray(np.asarray(values, dtype=np.float64)), *opts)


def replicate(tree: Any, n: int) -> Any:
    """Every leaf repeated ``n`` times along a new leading axis (one copy per config)."""
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *jnp.shape(a))).copy(), tree)


def pad_configs(tree: Any, multiple: int) -> tuple[Any, int]:
    """Pad the leading config axis to a multiple of ``multiple`` by repeating the last config.

    Returns ``(padded_tree, n_real)``; results for the padded configs are discarded.
    """
    n = jax.tree.leaves(tree)[0].shape[0]
    extra = -n % multiple

    def pad(a: Array) -> Array:
        return jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)]) if extra else a

    return jax.tree.map(pad, tree), n


def config_sharding(devices: Sequence[jax.Device] | None = None) -> NamedSharding:
    """Split the leading (config) axis over ``devices`` (all local devices by default)."""
    mesh = Mesh(np.asarray(devices if devices is not None else jax.devices()), ("configs",))
    return NamedSharding(mesh, PartitionSpec("configs"))


def batch_sharding(devices: Sequence[jax.Device] | None = None) -> NamedSharding:
    """Split the batch axis (axis 1 of `Batches` arrays ``(n_batches, batch, ...)``) over ``devices``.

    Data parallelism: each device holds a slice of every mini-batch; XLA inserts
    the sum of gradients across devices.
    """
    mesh = Mesh(np.asarray(devices if devices is not None else jax.devices()), ("batch",))
    return NamedSharding(mesh, PartitionSpec(None, "batch"))
