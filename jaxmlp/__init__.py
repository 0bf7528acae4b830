"""jaxmlp: a multilayer perceptron trained by pure functions, with a hand-written backward pass.

A model is a pair of functions (`init_params`, `forward`), its parameters a
plain tuple of `Layer(W, b)`; the optimizer is an `init`/`update` pair
(`sgd_init`, `sgd_update`) with explicit state. jaxmlp never imports torch:
weights cross to PyTorch as NumPy arrays (`params_to_numpy`, `params_from_numpy`).
"""

from jaxmlp.activations import ACTIVATIONS
from jaxmlp.backprop import Cache, Gradients, backward_pass, forward, forward_pass, loss_and_grads, loss_value
from jaxmlp.gradcheck import finite_difference_grads, gradient_check, relative_errors
from jaxmlp.grid import replicate, stack_configs
from jaxmlp.layers import Layer, Params, init_params, params_from_numpy, params_to_numpy
from jaxmlp.losses import LOSSES
from jaxmlp.optim import SGD, SGDState, sgd_init, sgd_update
from jaxmlp.spec import CIFAR2_SPEC, MLPSpec
from jaxmlp.train import (
    Batches,
    Metrics,
    TrainState,
    evaluate,
    init_train_state,
    make_batches,
    train_epoch,
    train_step,
)

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "CIFAR2_SPEC",
    "Batches",
    "Cache",
    "Gradients",
    "Layer",
    "MLPSpec",
    "Metrics",
    "Params",
    "SGD",
    "SGDState",
    "TrainState",
    "backward_pass",
    "evaluate",
    "finite_difference_grads",
    "forward",
    "forward_pass",
    "gradient_check",
    "init_params",
    "init_train_state",
    "loss_and_grads",
    "loss_value",
    "make_batches",
    "params_from_numpy",
    "params_to_numpy",
    "relative_errors",
    "replicate",
    "sgd_init",
    "sgd_update",
    "stack_configs",
    "train_epoch",
    "train_step",
]
