"""The forward pass, the hand-written backward pass, and ``forward`` as a ``jax.custom_vjp``.

Notation (row-major batches, one row per sample; layer ``l = 1..L``)::

    a[0] = x                                   input, (batch, n_0)
    z[l] = a[l-1] W[l]^T + b[l]                pre-activation, (batch, n_l)
    a[l] = f_l(z[l])                           activation
    delta[l] = dL/dz[l]                        local gradient, (batch, n_l)

The four backpropagation equations (Nielsen, *Neural Networks and Deep
Learning*, ch. 2, written for a batch of rows):

    (BP1) delta[L] = dL/da[L] * f_L'(z[L])
    (BP2) delta[l] = (delta[l+1] W[l+1]) * f_l'(z[l])
    (BP3) dL/db[l] = sum over the batch of delta[l]
    (BP4) dL/dW[l] = delta[l]^T a[l-1]
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax

from jaxmlp.activations import ACTIVATIONS
from jaxmlp.checks import check_batch, check_inputs, check_params
from jaxmlp.layers import Layer, Params, affine, affine_backward
from jaxmlp.losses import LOSSES
from jaxmlp.spec import MLPSpec

Array = jax.Array


class Cache(NamedTuple):
    """What the backward pass needs from the forward pass.

    ``a[l]`` for ``l = 0..L`` and ``z[l - 1]`` holding ``z[l]`` for ``l = 1..L``.
    """

    a: tuple[Array, ...]
    z: tuple[Array, ...]


def forward_pass(spec: MLPSpec, params: Params, x: Array) -> Cache:
    """Run ``z[l] = a[l-1] W[l]^T + b[l]``, ``a[l] = f_l(z[l])`` and keep every ``z`` and ``a``.

    ``x: (batch, n_0)``; the output is ``cache.a[-1]: (batch, n_L)``.
    """
    a, z = [x], []
    for layer, name in zip(params, spec.activations):
        z.append(affine(layer, a[-1]))
        a.append(ACTIVATIONS[name].f(z[-1]))
    return Cache(tuple(a), tuple(z))


class Gradients(NamedTuple):
    """What the backward pass computes: ``params`` (``dL/dW[l]``, ``dL/db[l]``, structured like the
    parameters), the local gradients ``deltas[l - 1] = delta[l]`` and ``inputs = dL/da[0]`` (or None)."""

    params: Params
    deltas: tuple[Array, ...]
    inputs: Array | None


def backward_pass(
    spec: MLPSpec, params: Params, cache: Cache, dL_daL: Array, input_grad: bool = False
) -> Gradients:
    """Gradients of the loss for every ``W[l]``, ``b[l]`` from ``dL/da[L]: (batch, n_L)``.

    ``dL/da[0]: (batch, n_0)`` is computed only when ``input_grad`` is True.
    Under ``jit``, whatever the caller does not use (the deltas, say) is never computed.
    """
    grads: list[Layer] = []
    deltas: list[Array] = []
    dL_da = dL_daL
    for l in reversed(range(spec.n_layers)):
        df = ACTIVATIONS[spec.activations[l]].df
        delta = dL_da * df(cache.z[l], cache.a[l + 1])  # (BP1) for the last layer, then (BP2)
        grad, dL_da = affine_backward(params[l], cache.a[l], delta, input_grad or l > 0)  # (BP3), (BP4)
        grads.append(grad)
        deltas.append(delta)
    return Gradients(tuple(reversed(grads)), tuple(reversed(deltas)), dL_da)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _mlp(spec: MLPSpec, params: Params, x: Array) -> Array:
    return forward_pass(spec, params, x).a[-1]


def _mlp_fwd(spec: MLPSpec, params: Params, x: Array) -> tuple[Array, tuple[Params, Cache]]:
    cache = forward_pass(spec, params, x)
    return cache.a[-1], (params, cache)


def _mlp_bwd(spec: MLPSpec, residuals: tuple[Params, Cache], g: Array) -> tuple[Params, Array]:
    # Under jit, XLA drops the input gradient's matmul whenever the caller does not use it.
    params, cache = residuals
    grads = backward_pass(spec, params, cache, g, input_grad=True)
    return grads.params, grads.inputs


_mlp.defvjp(_mlp_fwd, _mlp_bwd)
# Compiled once per spec and shape, so eager calls run as one program instead of op by op;
# inside an outer jit this is simply inlined.
_mlp_jit = jax.jit(_mlp, static_argnums=0)


def forward(spec: MLPSpec, params: Params, x: Array) -> Array:
    """The network's output ``a[L]: (batch, sizes[-1])`` for ``x: (batch, ...)``.

    ``x`` is flattened to ``(batch, sizes[0])``. ``jax.grad`` of any function of
    this output uses the hand-written `backward_pass` (a ``custom_vjp``), under
    any combination of ``jit``, ``vmap``, ``lax.scan`` and ``grad``.
    Forward-mode autodiff (``jvp``, ``jacfwd``) is not available through it.
    """
    check_inputs(spec, check_params(spec, params), x)
    return _mlp_jit(spec, tuple(Layer(*layer) for layer in params), x.reshape(x.shape[0], -1))


def loss_and_grads(
    spec: MLPSpec, params: Params, x: Array, y: Array, loss: str = "cross_entropy"
) -> tuple[Array, Params]:
    """The loss on one batch and its gradients, by the hand-written backward pass only.

    Args:
        x: ``(batch, ...)`` inputs, flattened to ``(batch, sizes[0])``, dtype of ``params``.
        y: labels ``(batch,)`` (integers, for ``"cross_entropy"``) or targets
            ``(batch, sizes[-1])`` (for ``"mse"`` and ``"sse"``).
        loss: ``"cross_entropy"``, ``"mse"`` or ``"sse"`` (see `jaxmlp.losses`).

    Returns:
        ``(loss, grads)``, ``grads`` with the structure of ``params``. No
        ``jax.grad`` is involved and no gradient is formed for ``x``.
    """
    check_batch(spec, params, x, y, loss)
    value, grads, _ = loss_grads_and_output(spec, tuple(Layer(*layer) for layer in params), x, y, loss)
    return value, grads


@functools.partial(jax.jit, static_argnums=(0, 4))
def loss_grads_and_output(
    spec: MLPSpec, params: Params, x: Array, y: Array, loss: str
) -> tuple[Array, Params, Array]:
    """`loss_and_grads` without the checks, also returning the output ``a[L]`` (for accuracy)."""
    cache = forward_pass(spec, params, x.reshape(x.shape[0], -1))
    out = cache.a[-1]
    grads = backward_pass(spec, params, cache, LOSSES[loss].grad(out, y)).params
    return LOSSES[loss].value(out, y), grads, out


def loss_value(spec: MLPSpec, params: Params, x: Array, y: Array, loss: str = "cross_entropy") -> Array:
    """The same loss through plain JAX operations, with no custom rule: ``jax.grad`` of it is ordinary autodiff.

    This is the reference the hand-written backward pass is checked against,
    and what a JAX user would write before reaching for a custom VJP.
    """
    check_batch(spec, params, x, y, loss)
    return _loss_value(spec, tuple(Layer(*layer) for layer in params), x, y, loss)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _loss_value(spec: MLPSpec, params: Params, x: Array, y: Array, loss: str) -> Array:
    out = forward_pass(spec, params, x.reshape(x.shape[0], -1)).a[-1]
    return LOSSES[loss].value(out, y)
