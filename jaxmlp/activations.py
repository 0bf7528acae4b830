"""Element-wise activations ``a = f(z)``, each beside its derivative ``f'(z)``.

A derivative takes both ``z`` and ``a = f(z)``: tanh and sigmoid are cheapest
written in terms of the output, exactly as PyTorch's autograd writes them, which
keeps the two frameworks' rounding the same.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Activation(NamedTuple):
    """``f(z)`` and ``f'(z)``; ``df(z, a)`` receives ``a = f(z)`` already computed."""

    f: Callable[[Array], Array]
    df: Callable[[Array, Array], Array]


def relu(z: Array) -> Array:
    """``max(z, 0)``, written as a select so autodiff also sees slope 0 at ``z = 0``."""
    return jnp.where(z > 0, z, jnp.zeros_like(z))


def relu_prime(z: Array, a: Array) -> Array:
    """``1[z > 0]``: the derivative at exactly 0 is 0, as in PyTorch."""
    return (z > 0).astype(z.dtype)


def tanh_prime(z: Array, a: Array) -> Array:
    """``1 - tanh(z)^2 = 1 - a^2``."""
    return 1 - a * a


def sigmoid(z: Array) -> Array:
    """``1 / (1 + exp(-z))``."""
    return jax.nn.sigmoid(z)


def sigmoid_prime(z: Array, a: Array) -> Array:
    """``sigma(z) (1 - sigma(z)) = a (1 - a)``."""
    return a * (1 - a)


def identity(z: Array) -> Array:
    """``z``."""
    return z


def identity_prime(z: Array, a: Array) -> Array:
    """``1``."""
    return jnp.ones_like(z)


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(relu, relu_prime),
    "tanh": Activation(jnp.tanh, tanh_prime),
    "sigmoid": Activation(sigmoid, sigmoid_prime),
    "identity": Activation(identity, identity_prime),
}
