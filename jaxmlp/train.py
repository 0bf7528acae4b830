"""Training as pure functions: a step, an epoch as one ``lax.scan``, a grid of configs as one ``vmap``.

State is explicit (`TrainState`) and returned, never mutated. An epoch walks the
data in a fixed order of mini-batches: ``n // batch_size`` full batches inside
one ``lax.scan``, then the remaining ``n % batch_size`` samples as one last,
smaller step, exactly like a ``torch.utils.data.DataLoader`` without
``drop_last``. Shapes are fixed per data set, so epochs never recompile.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmlp.backprop import forward_pass, loss_grads_and_output
from jaxmlp.checks import check_batch
from jaxmlp.layers import Params
from jaxmlp.losses import LOSSES
from jaxmlp.optim import SGD, SGDState, sgd_init, sgd_update
from jaxmlp.spec import MLPSpec

Array = jax.Array


class TrainState(NamedTuple):
    """Everything that changes during training: the parameters and the optimizer's state."""

    params: Params
    opt_state: SGDState


class Metrics(NamedTuple):
    """Mean loss and accuracy over the samples of a data set (or of one epoch's steps)."""

    loss: Array
    accuracy: Array


class Batches(NamedTuple):
    """A data set cut into mini-batches: ``x: (n_batches, batch, n_0)``, ``y: (n_batches, batch, ...)``,
    and the last partial batch ``x_rest: (n % batch, n_0)``, ``y_rest`` (possibly empty)."""

    x: Array
    y: Array
    x_rest: Array
    y_rest: Array


def init_train_state(params: Params) -> TrainState:
    """The state before the first step."""
    return TrainState(params, sgd_init(params))


def make_batches(x: Array, y: Array, batch_size: int, order: Array | None = None) -> Batches:
    """Cut ``x: (n, ...)``, ``y: (n, ...)`` into `Batches`, visiting samples in ``order: (n,)`` if given."""
    if order is not None:
        x, y = x[order], y[order]
    x = x.reshape(x.shape[0], -1)
    n_full = x.shape[0] // batch_size * batch_size

    def cut(a: Array) -> Array:
        return a[:n_full].reshape(-1, batch_size, *a.shape[1:])

    return Batches(cut(x), cut(y), x[n_full:], y[n_full:])


def correct_predictions(out: Array, y: Array) -> Array:
    """How many rows of ``out: (batch, n_out)`` have their argmax at the label (or at the target's argmax)."""
    label = y if y.ndim == 1 else y.argmax(axis=1)
    return (out.argmax(axis=1) == label).sum()


def summed_loss(loss: str, value: Array, batch: int) -> Array:
    """The sum over the batch of per-sample losses, from a loss ``value`` reduced as `jaxmlp.losses` does."""
    return value if loss == "sse" else value * batch


def train_step(
    spec: MLPSpec, loss: str, opt: SGD, state: TrainState, x: Array, y: Array
) -> tuple[TrainState, tuple[Array, Array]]:
    """One SGD step on ``x: (batch, n_0)``, ``y``; also returns the batch's summed loss and correct count
    (measured before the update)."""
    value, grads, out = loss_grads_and_output(spec, state.params, x, y, loss)
    params, opt_state = sgd_update(opt, grads, state.opt_state, state.params)
    return TrainState(params, opt_state), (summed_loss(loss, value, x.shape[0]), correct_predictions(out, y))


def train_epoch(spec: MLPSpec, loss: str, opt: SGD, state: TrainState, batches: Batches) -> tuple[TrainState, Metrics]:
    """One pass over ``batches``; the metrics average each step's loss and accuracy over the samples."""
    # Every sample is checked, not just the first batch: the stack reshapes for free.
    if batches.x.shape[0]:
        check_batch(spec, state.params, batches.x.reshape(-1, *batches.x.shape[2:]),
                    batches.y.reshape(-1, *batches.y.shape[2:]), loss)
    if batches.x_rest.shape[0]:
        check_batch(spec, state.params, batches.x_rest, batches.y_rest, loss)
    step = functools.partial(train_step, spec, loss, opt)
    state, (losses, correct) = jax.lax.scan(lambda s, b: step(s, *b), state, (batches.x, batches.y))
    total_loss, total_correct = losses.sum(), correct.sum()
    if batches.x_rest.shape[0]:
        state, (rest_loss, rest_correct) = step(state, batches.x_rest, batches.y_rest)
        total_loss, total_correct = total_loss + rest_loss, total_correct + rest_correct
    n = batches.x.shape[0] * batches.x.shape[1] + batches.x_rest.shape[0]
    return state, Metrics(total_loss / n, total_correct / n)


def evaluate(spec: MLPSpec, loss: str, params: Params, x: Array, y: Array) -> Metrics:
    """Mean per-sample loss and accuracy of ``params`` on ``x: (n, ...)``, ``y``, in one forward pass."""
    check_batch(spec, params, x, y, loss)
    n = x.shape[0]
    out = forward_pass(spec, params, x.reshape(n, -1)).a[-1]
    return Metrics(summed_loss(loss, LOSSES[loss].value(out, y), n) / n, correct_predictions(out, y) / n)
