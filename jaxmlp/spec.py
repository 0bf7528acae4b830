"""The architecture of a multilayer perceptron, as a hashable value.

A spec is static information (layer widths and activation names): it is what
`jax.jit` may bake into a compiled program, while parameters are traced arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxmlp.activations import ACTIVATIONS


@dataclass(frozen=True)
class MLPSpec:
    """Layer widths and one activation per layer.

    Layer ``l`` (1-based, as in the backpropagation derivation) maps
    ``a[l-1]: (batch, sizes[l-1])`` to ``a[l] = f_l(z[l]): (batch, sizes[l])``.

    Attributes:
        sizes: ``(n_0, n_1, ..., n_L)``; ``n_0`` is the input width.
        activations: ``(f_1, ..., f_L)``, each one of ``"relu"``, ``"tanh"``,
            ``"sigmoid"``, ``"identity"``.
    """

    sizes: tuple[int, ...]
    activations: tuple[str, ...]

    def __post_init__(self) -> None:
        sizes = tuple(self.sizes)
        activations = tuple(self.activations)
        if len(sizes) < 2:
            raise ValueError(
                f"MLPSpec.sizes needs an input and at least one layer width, got {sizes!r}; "
                "for example sizes=(3072, 512, 2)."
            )
        for i, n in enumerate(sizes):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(
                    f"MLPSpec.sizes[{i}] = {n!r} is not a positive integer; every width must be an int >= 1."
                )
        if len(activations) != len(sizes) - 1:
            raise ValueError(
                f"MLPSpec has {len(sizes) - 1} layers (sizes={sizes!r}) but {len(activations)} activations; "
                "give exactly one activation per layer."
            )
        for i, name in enumerate(activations):
            if name not in ACTIVATIONS:
                raise ValueError(
                    f"MLPSpec.activations[{i}] = {name!r} is unknown; choose one of {sorted(ACTIVATIONS)}."
                )
        # Lists would make the spec unhashable, and jit needs it hashable.
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "activations", activations)

    @property
    def n_layers(self) -> int:
        """``L``, the number of weight layers."""
        return len(self.sizes) - 1

    @classmethod
    def mlp(cls, sizes: tuple[int, ...], hidden: str = "relu", output: str = "identity") -> MLPSpec:
        """A spec with the same ``hidden`` activation everywhere but on the output layer."""
        n_layers = len(sizes) - 1
        return cls(tuple(sizes), (hidden,) * (n_layers - 1) + (output,))


CIFAR2_SPEC = MLPSpec.mlp((3072, 512, 128, 32, 2))
"""The study's network: 3072-512-128-32-2, ReLU hidden layers, linear output."""
