"""The course's imperative network and its hand-written backpropagation.

`MyNet` keeps the course's interface (``L``, ``n_l``, ``fc``, ``z``, ``a``, ``f``,
``df``, ``dL_dw``, ``dL_db``), so its test harness (autograd comparison,
finite differences, weights updated, computational graph intact) runs against
it unchanged. The forward pass *stores* ``z[l]`` and ``a[l]`` on the module:
state lives in the object and is overwritten in place by every call.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

Tensor = torch.Tensor

# f and f'(z) by name; tanh' is 1 - tanh(z)^2, the form autograd's tanh backward uses.
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "relu": (torch.relu, lambda z: (z > 0).to(z.dtype)),
    "tanh": (torch.tanh, lambda z: 1 - torch.tanh(z) ** 2),
    "sigmoid": (torch.sigmoid, lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z))),
    "identity": (lambda z: z, torch.ones_like),
}


class MyNet(nn.Module):
    """A fully connected network with widths ``n_l = [n_0, ..., n_L]`` (tanh everywhere by default).

    Args:
        n_l: layer widths, input first.
        activations: one name per layer (``"relu"``, ``"tanh"``, ``"sigmoid"``,
            ``"identity"``); ``None`` means tanh on every layer, as in the course.
    """

    def __init__(self, n_l: Sequence[int] = (2, 3, 2), activations: Sequence[str] | None = None) -> None:
        super().__init__()
        self.L = len(n_l) - 1
        self.n_l = list(n_l)
        names = list(activations) if activations is not None else ["tanh"] * self.L
        if len(names) != self.L or any(name not in ACTIVATIONS for name in names):
            raise ValueError(
                f"MyNet needs {self.L} activations from {sorted(ACTIVATIONS)}, got {names!r}."
            )
        self.activations = names
        # Filled by forward, read by backpropagation.
        self.z: dict[int, Tensor | None] = {l: None for l in range(1, self.L + 1)}
        self.a: dict[int, Tensor | None] = {l: None for l in range(self.L + 1)}
        # Filled by backpropagation.
        self.dL_dw: dict[int, Tensor | None] = {l: None for l in range(1, self.L + 1)}
        self.dL_db: dict[int, Tensor | None] = {l: None for l in range(1, self.L + 1)}
        self.f = {l: ACTIVATIONS[names[l - 1]][0] for l in range(1, self.L + 1)}
        self.df = {l: ACTIVATIONS[names[l - 1]][1] for l in range(1, self.L + 1)}
        # String keys: nn.ModuleDict registers the layers' parameters only under str keys.
        self.fc = nn.ModuleDict({str(l): nn.Linear(self.n_l[l - 1], self.n_l[l]) for l in range(1, self.L + 1)})

    def forward(self, x: Tensor) -> Tensor:
        """``x: (batch, ...)`` -> ``a[L]: (batch, n_L)``, storing every ``z[l]`` and ``a[l]``."""
        self.a[0] = torch.flatten(x, 1)
        for l in range(1, self.L + 1):
            self.z[l] = self.fc[str(l)](self.a[l - 1])
            self.a[l] = self.f[l](self.z[l])
        return self.a[self.L]


def sse_loss(y_pred: Tensor, y_true: Tensor) -> Tensor:
    """The course's loss, ``L = sum (y_pred - y_true)^2``: what `backpropagation` differentiates."""
    return nn.MSELoss(reduction="none")(y_pred, y_true).sum()


def backpropagation(model: MyNet, y_true: Tensor, y_pred: Tensor) -> None:
    """Gradients of the sum of squared errors ``L = sum (y_pred - y_true)^2`` for every layer.

    Vectorized over the batch, under ``torch.no_grad()``; reads ``model.z``,
    ``model.a`` from the last forward pass and writes ``model.dL_dw[l]: (n_l, n_{l-1})``
    and ``model.dL_db[l]: (n_l,)``. It leaves ``.grad`` and the weights alone.
    """
    with torch.no_grad():
        dL_da = 2 * (y_pred - y_true)
        for l in range(model.L, 0, -1):
            delta = dL_da * model.df[l](model.z[l])  # (BP1) at l = L, (BP2) below
            model.dL_dw[l] = delta.T @ model.a[l - 1]  # (BP4)
            model.dL_db[l] = delta.sum(dim=0)  # (BP3)
            dL_da = delta @ model.fc[str(l)].weight
