"""The study's network as an ordinary PyTorch module, and weight exchange with jaxmlp."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn


class MyMLP(nn.Module):
    """``sizes[0] -> ... -> sizes[-1]`` with ReLU after every hidden layer and none on the output.

    ``x: (batch, ...)`` is flattened to ``(batch, sizes[0])``; the output is the logits ``(batch, sizes[-1])``.
    """

    def __init__(self, sizes: Sequence[int] = (3072, 512, 128, 32, 2)) -> None:
        super().__init__()
        self.sizes = tuple(sizes)
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(self.sizes) - 2:
                layers.append(nn.ReLU())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's ``nn.Linear`` layers in registration order (input side first)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def numpy_params(model: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W, b), ...]`` copies of every linear layer, ``W: (n_out, n_in)``: the format jaxmlp reads."""
    return [(m.weight.detach().cpu().numpy().copy(), m.bias.detach().cpu().numpy().copy()) for m in linear_layers(model)]


def load_numpy_params(model: nn.Module, params: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    """Copy ``[(W, b), ...]`` into the model's linear layers in place, keeping each parameter's dtype."""
    layers = linear_layers(model)
    if len(params) != len(layers):
        raise ValueError(f"load_numpy_params: the model has {len(layers)} linear layers but {len(params)} (W, b) pairs were given.")
    with torch.no_grad():
        for i, (layer, (W, b)) in enumerate(zip(layers, params), start=1):
            if tuple(np.shape(W)) != tuple(layer.weight.shape) or tuple(np.shape(b)) != tuple(layer.bias.shape):
                raise ValueError(
                    f"load_numpy_params: layer {i} expects W {tuple(layer.weight.shape)} and b {tuple(layer.bias.shape)}, "
                    f"got {np.shape(W)} and {np.shape(b)}."
                )
            layer.weight.copy_(torch.as_tensor(np.asarray(W)))
            layer.bias.copy_(torch.as_tensor(np.asarray(b)))
