"""Stochastic gradient descent exactly as ``torch.optim.SGD``, as a pure ``init``/``update`` pair.

For every parameter ``p`` with gradient ``grad``, step ``t = 1, 2, ...``
(``mu`` momentum, ``tau`` dampening, ``lambda`` weight decay, ``eta`` learning rate)::

    g_t = -grad_t if maximize else grad_t
    g_t = g_t + lambda p_{t-1}                                  (weight decay, added to the gradient)
    if mu != 0:
        b_t = g_t                              if t = 1         (no dampening on the first step)
        b_t = mu b_{t-1} + (1 - tau) g_t       if t > 1
        g_t = g_t + mu b_t                     if nesterov
        g_t = b_t                              otherwise
    p_t = p_{t-1} - eta g_t

The hyperparameters ``eta, mu, tau, lambda`` are pytree leaves: pass Python
floats for one run, or arrays with a leading config axis and ``vmap`` over them
for a grid; changing them never recompiles. ``nesterov`` and ``maximize`` change
the program, so they are static.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.checks import is_concrete
from jaxmlp.layers import Params

Array = jax.Array
Scalar = float | Array

_HYPERPARAMETERS = ("lr", "momentum", "dampening", "weight_decay")


@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True)
class SGD:
    """Hyperparameters of `sgd_update`, validated like ``torch.optim.SGD``.

    Raises ``ValueError`` for a negative ``lr``, ``momentum`` or ``weight_decay``,
    any non-finite value, or ``nesterov`` without a positive momentum and zero
    dampening. Array values (one entry per config of a grid) are checked entry by entry.
    """

    lr: Scalar
    momentum: Scalar = 0.0
    dampening: Scalar = 0.0
    weight_decay: Scalar = 0.0
    nesterov: bool = False
    maximize: bool = False

    def __post_init__(self) -> None:
        values = {name: getattr(self, name) for name in _HYPERPARAMETERS}
        if not all(is_concrete(v) for v in values.values()):
            return
        arrays = {}
        for name, value in values.items():
            try:
                arrays[name] = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"SGD {name}={value!r} is not a number; pass a float or an array of floats.") from None
            if not np.isfinite(arrays[name]).all():
                raise ValueError(f"Invalid {name}: {value!r}; SGD hyperparameters must be finite.")
        for name in ("lr", "momentum", "weight_decay"):
            if (arrays[name] < 0).any():
                raise ValueError(f"Invalid {name}: {values[name]!r}; it must be >= 0 (as in torch.optim.SGD).")
        if self.nesterov and ((arrays["momentum"] <= 0).any() or (arrays["dampening"] != 0).any()):
            raise ValueError(
                "Nesterov momentum requires a momentum > 0 and zero dampening "
                f"(got momentum={values['momentum']!r}, dampening={values['dampening']!r})."
            )
        for name in ("nesterov", "maximize"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"SGD {name} must be a bool (it selects the compiled program), got {getattr(self, name)!r}.")

    def tree_flatten(self) -> tuple[tuple[Scalar, ...], tuple[bool, bool]]:
        return tuple(getattr(self, name) for name in _HYPERPARAMETERS), (self.nesterov, self.maximize)

    @classmethod
    def tree_unflatten(cls, static: tuple[bool, bool], leaves: tuple[Any, ...]) -> SGD:
        # JAX rebuilds the tree with tracers or placeholders: skip validation, it ran at construction.
        opt = object.__new__(cls)
        for name, value in zip(_HYPERPARAMETERS, leaves):
            object.__setattr__(opt, name, value)
        object.__setattr__(opt, "nesterov", static[0])
        object.__setattr__(opt, "maximize", static[1])
        return opt


class SGDState(NamedTuple):
    """``momentum_buffer``: ``b_t``, same structure as the params; ``step``: ``t``, steps taken so far."""

    momentum_buffer: Params
    step: Array


def sgd_init(params: Params) -> SGDState:
    """The state before the first step: ``b_0 = 0``, ``t = 0``."""
    return SGDState(jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.int32))


def sgd_update(opt: SGD, grads: Params, state: SGDState, params: Params) -> tuple[Params, SGDState]:
    """One step of the rule in the module docstring; returns ``(new_params, new_state)``; pure."""
    first_step = state.step == 0

    def update_one(p: Array, grad: Array, buf: Array) -> tuple[Array, Array]:
        lr, mu, tau, wd = (jnp.asarray(getattr(opt, n), p.dtype) for n in _HYPERPARAMETERS)
        g = -grad if opt.maximize else grad
        g = g + wd * p
        buf = jnp.where(first_step, g, mu * buf + (1 - tau) * g)
        step_dir = g + mu * buf if opt.nesterov else buf
        return p - lr * jnp.where(mu == 0, g, step_dir), buf

    new = jax.tree.map(update_one, params, grads, state.momentum_buffer)
    new_params = jax.tree.map(lambda _, pair: pair[0], params, new)
    new_buffer = jax.tree.map(lambda _, pair: pair[1], params, new)
    return new_params, SGDState(new_buffer, state.step + 1)
