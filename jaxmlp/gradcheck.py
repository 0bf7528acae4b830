"""Central finite differences: an independent check of any spec's gradients.

The five-point central stencil, with ``L_k = L(theta + k eps e_i)``::

    dL/dtheta_i ~ (L_{-2} - 8 L_{-1} + 8 L_{+1} - L_{+2}) / (12 eps)

has truncation error ``O(eps^4)`` and rounding error ``O(u |L| / eps)`` (``u``
the unit roundoff), so ``eps = 1e-4`` gives about ``1e-12 |L|`` in float64,
small enough to check even tiny gradients to a relative ``1e-7``. (The
three-point ``(L_{+1} - L_{-1}) / (2 eps)`` at its best ``eps ~ 1e-6`` leaves
about ``1e-10 |L|``.) Near a ReLU kink (``|z| < 2 eps |a|``) the loss is not
differentiable and the check is meaningless: choose test points away from them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxmlp.backprop import loss_and_grads, loss_value
from jaxmlp.layers import Layer, Params
from jaxmlp.spec import MLPSpec

Array = jax.Array


def finite_difference_grads(
    spec: MLPSpec, params: Params, x: Array, y: Array, loss: str = "cross_entropy", eps: float = 1e-4
) -> Params:
    """Every entry of ``dL/dW[l]`` and ``dL/db[l]`` by the five-point stencil, in the structure of ``params``."""
    loss_value(spec, params, x, y, loss)  # validates the inputs once, eagerly
    theta, unravel = ravel_pytree(tuple(Layer(*layer) for layer in params))
    steps = jnp.array([-2.0, -1.0, 1.0, 2.0], theta.dtype) * eps

    def losses_around(i: Array) -> Array:
        return jax.vmap(lambda h: loss_value(spec, unravel(theta.at[i].add(h)), x, y, loss))(steps)

    L = np.asarray(jax.jit(lambda: jax.lax.map(losses_around, jnp.arange(theta.size), batch_size=16))())
    # Combined outside the compiled program: inside it, XLA may contract (a-y)^2 - (b-y)^2 into an FMA,
    # leaving a rounding residual (~1e-19) where the exact difference is 0.
    return unravel((L[:, 0] - 8 * L[:, 1] + 8 * L[:, 2] - L[:, 3]) / (12 * eps))


def relative_errors(a: Params, b: Params) -> list[tuple[float, float]]:
    """Per layer ``(err_W, err_b)`` with ``err = ||a - b|| / max(||a||, ||b||)`` (0 when both are 0)."""

    def err(u: Array, v: Array) -> float:
        scale = max(float(jnp.linalg.norm(u)), float(jnp.linalg.norm(v)))
        return float(jnp.linalg.norm(u - v)) / scale if scale > 0 else 0.0

    return [(err(la.W, lb.W), err(la.b, lb.b)) for la, lb in zip(a, b)]


def gradient_check(
    spec: MLPSpec, params: Params, x: Array, y: Array, loss: str = "cross_entropy", eps: float = 1e-4
) -> float:
    """Largest relative error between the hand-written gradients and finite differences, over all parameters."""
    _, grads = loss_and_grads(spec, params, x, y, loss)
    fd = finite_difference_grads(spec, params, x, y, loss, eps)
    return max(max(pair) for pair in relative_errors(grads, fd))
