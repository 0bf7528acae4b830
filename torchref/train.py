"""The imperative training loops: ``torch.optim.SGD`` and the same rule written out by hand.

Both loops share one epoch function; they differ only in the update applied
after ``loss.backward()``. Gradients are zeroed before every backward pass,
because ``backward`` *accumulates* into ``.grad``.
"""

from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

import torch
from torch import nn

Tensor = torch.Tensor
Loader = Iterable[tuple[Tensor, Tensor]]


class History(NamedTuple):
    """Per-epoch histories: ``train_*`` averaged over each step's batch (before its update),
    ``val_*`` measured on the whole validation set after the epoch."""

    train_loss: list[float]
    val_loss: list[float]
    train_accuracy: list[float]
    val_accuracy: list[float]


def _batch_sums(loss_fn: nn.Module, loss: Tensor, outputs: Tensor, labels: Tensor) -> tuple[float, int]:
    """(summed per-sample loss, correct predictions) of one batch; ``loss_fn`` averages unless ``reduction="sum"``."""
    n = outputs.shape[0]
    total = loss.item() if getattr(loss_fn, "reduction", "mean") == "sum" else loss.item() * n
    target = labels if labels.ndim == 1 else labels.argmax(dim=1)
    return total, int((outputs.argmax(dim=1) == target).sum())


def train_epoch(model: nn.Module, loss_fn: nn.Module, loader: Loader, update: Callable[[], None]) -> tuple[float, float]:
    """One pass over ``loader``: forward, zero the gradients, backward, ``update()``; returns (mean loss, accuracy)."""
    model.train()
    loss_sum, correct, n = 0.0, 0, 0
    for imgs, labels in loader:
        outputs = model(imgs)
        loss = loss_fn(outputs, labels)
        model.zero_grad()
        loss.backward()
        update()
        batch_loss, batch_correct = _batch_sums(loss_fn, loss, outputs, labels)
        loss_sum, correct, n = loss_sum + batch_loss, correct + batch_correct, n + outputs.shape[0]
    return loss_sum / n, correct / n


def evaluate(model: nn.Module, loss_fn: nn.Module, loader: Loader) -> tuple[float, float]:
    """(mean per-sample loss, accuracy) of ``model`` on ``loader``, without gradients."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for imgs, labels in loader:
            outputs = model(imgs)
            batch_loss, batch_correct = _batch_sums(loss_fn, loss_fn(outputs, labels), outputs, labels)
            loss_sum, correct, n = loss_sum + batch_loss, correct + batch_correct, n + outputs.shape[0]
    return loss_sum / n, correct / n


def _fit(
    n_epochs: int, model: nn.Module, loss_fn: nn.Module, train_loader: Loader, val_loader: Loader, update: Callable[[], None]
) -> History:
    history = History([], [], [], [])
    for _ in range(n_epochs):
        train_loss, train_acc = train_epoch(model, loss_fn, train_loader, update)
        val_loss, val_acc = evaluate(model, loss_fn, val_loader)
        for values, value in zip(history, (train_loss, val_loss, train_acc, val_acc)):
            values.append(value)
    return history


def train(
    n_epochs: int,
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    loss_fn: nn.Module,
    train_loader: Loader,
    val_loader: Loader,
) -> History:
    """Train with ``optimizer.step()``; returns the per-epoch `History`."""
    return _fit(n_epochs, model, loss_fn, train_loader, val_loader, optimizer.step)


class ManualSGD:
    """``torch.optim.SGD``'s rule written out on ``p.data``; the buffers live in a dict keyed by parameter.

    ``g = grad + wd p``; ``b = g`` on the first step, else ``b = mu b + (1 - tau) g``;
    ``g = g + mu b`` (Nesterov) or ``g = b``; ``p = p - lr g``.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, weight_decay: float = 0.0, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False) -> None:
        # Built on torch.optim.SGD's own checks so invalid values fail the same way.
        self.params = torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum,
                                      dampening=dampening, nesterov=nesterov).param_groups[0]["params"]
        self.lr, self.weight_decay, self.momentum = lr, weight_decay, momentum
        self.dampening, self.nesterov = dampening, nesterov
        self.buffers: dict[Tensor, Tensor] = {}

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            g = p.grad + self.weight_decay * p if self.weight_decay else p.grad
            if self.momentum:
                buf = self.buffers.get(p)
                buf = g.clone() if buf is None else self.momentum * buf + (1 - self.dampening) * g
                self.buffers[p] = buf
                g = g + self.momentum * buf if self.nesterov else buf
            p -= self.lr * g


def train_manual_update(
    n_epochs: int,
    lr: float,
    model: nn.Module,
    loss_fn: nn.Module,
    train_loader: Loader,
    val_loader: Loader,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
) -> History:
    """Train with the update written by hand (`ManualSGD`); returns the per-epoch `History`."""
    update = ManualSGD(model.parameters(), lr, weight_decay, momentum, dampening, nesterov)
    return _fit(n_epochs, model, loss_fn, train_loader, val_loader, update.step)
