"""torchref: the imperative PyTorch reference that jaxmlp is checked against.

Modules own their parameters and mutate them in place; the forward pass stores
its intermediate values on the module; gradients accumulate in ``.grad``.
"""

from torchref.mlp import MyMLP, linear_layers, load_numpy_params, numpy_params
from torchref.mynet import MyNet, backpropagation, sse_loss
from torchref.train import History, ManualSGD, evaluate, train, train_epoch, train_manual_update

__all__ = [
    "History",
    "ManualSGD",
    "MyMLP",
    "MyNet",
    "backpropagation",
    "evaluate",
    "linear_layers",
    "load_numpy_params",
    "numpy_params",
    "sse_loss",
    "train",
    "train_epoch",
    "train_manual_update",
]
