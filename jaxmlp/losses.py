"""Losses ``L(a[L], y)``, each beside its gradient ``dL/da[L]``, the seed of the backward pass.

``out: (batch, n_out)`` is the network's output ``a[L]``. Cross-entropy takes
integer labels ``y: (batch,)``; the squared errors take targets ``y: (batch, n_out)``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Loss(NamedTuple):
    """A scalar loss ``value(out, y)`` and its gradient ``grad(out, y) = dL/dout: (batch, n_out)``."""

    value: Callable[[Array, Array], Array]
    grad: Callable[[Array, Array], Array]


def log_softmax(out: Array) -> Array:
    """``out - logsumexp(out)`` row-wise, shifted by the row max so logits of +/-1000 stay finite."""
    shifted = out - jax.lax.stop_gradient(out.max(axis=1, keepdims=True))
    return shifted - jnp.log(jnp.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy(out: Array, y: Array) -> Array:
    """``-(1/B) sum_i log softmax(out_i)[y_i]``, as ``torch.nn.CrossEntropyLoss()``."""
    log_p = log_softmax(out)
    return -jnp.take_along_axis(log_p, y[:, None], axis=1).mean()


def cross_entropy_grad(out: Array, y: Array) -> Array:
    """``(softmax(out) - onehot(y)) / B``."""
    p = jnp.exp(log_softmax(out))
    return (p - jax.nn.one_hot(y, out.shape[1], dtype=out.dtype)) / out.shape[0]


def mse(out: Array, y: Array) -> Array:
    """``mean((out - y)^2)`` over all elements, as ``torch.nn.MSELoss()``."""
    return jnp.mean((out - y) ** 2)


def mse_grad(out: Array, y: Array) -> Array:
    """``2 (out - y) / (B n_out)``."""
    return 2 * (out - y) / out.size


def sse(out: Array, y: Array) -> Array:
    """``sum((out - y)^2)``, as the course's ``MSELoss(reduction="none")(out, y).sum()``."""
    return jnp.sum((out - y) ** 2)


def sse_grad(out: Array, y: Array) -> Array:
    """``2 (out - y)``."""
    return 2 * (out - y)


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss(cross_entropy, cross_entropy_grad),
    "mse": Loss(mse, mse_grad),
    "sse": Loss(sse, sse_grad),
}
