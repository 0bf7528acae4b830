"""The functional and the imperative formulation side by side, generated from the code that runs.

    python -m experiments.side_by_side           # (re)write docs/side_by_side.md
    python -m experiments.side_by_side --check   # exit 1 if the committed guide is stale
    python -m experiments.side_by_side --demo    # every quantity computed both ways on one batch

Each step of the guide pairs an equation (the notation of `jaxmlp.backprop`:
``a[l]``, ``z[l]``, ``W[l]``, ``b[l]``, ``delta[l]``, ``f'``) with the
`jaxmlp` function and the `torchref` code that implement it, excerpted from
their source files by this module, so the guide cannot drift from the code.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import jaxmlp as jm  # noqa: E402
import torchref as tr  # noqa: E402
from experiments import backends, study  # noqa: E402
from jaxmlp import activations, backprop, grid, layers, losses, optim, train  # noqa: E402
from torchref import mynet  # noqa: E402

torch_train = importlib.import_module("torchref.train")  # `torchref.train` the attribute is the train() function

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "side_by_side.md"


@dataclass(frozen=True)
class Excerpt:
    """The source of ``obj``, or the lines from the first containing ``start`` to the next containing ``end``."""

    obj: object
    start: str | None = None
    end: str | None = None

    @property
    def where(self) -> str:
        path = Path(inspect.getsourcefile(inspect.unwrap(self.obj))).resolve().relative_to(GUIDE.parents[1])
        return f"{path} :: {getattr(self.obj, '__qualname__', 'module')}"

    def text(self) -> str:
        lines = textwrap.dedent(inspect.getsource(self.obj)).splitlines()
        if self.start is not None:
            first = next(i for i, line in enumerate(lines) if self.start in line)
            last = next(i for i in range(first, len(lines)) if self.end in lines[i]) if self.end else len(lines) - 1
            lines = textwrap.dedent("\n".join(lines[first:last + 1])).splitlines()
        return "\n".join(lines)


@dataclass(frozen=True)
class Step:
    title: str
    equation: str
    jax: tuple[Excerpt, ...]
    torch: tuple[Excerpt, ...]
    differs: str


STEPS = (
    Step(
        "Forward pass",
        "a[0] = x,   z[l] = a[l-1] W[l]^T + b[l],   a[l] = f_l(z[l])   for l = 1..L",
        (Excerpt(layers.affine), Excerpt(backprop.forward_pass)),
        (Excerpt(mynet.MyNet.forward),),
        "`forward_pass` returns every `z[l]` and `a[l]` in a `Cache`, a value the caller hands to the backward "
        "pass; `MyNet.forward` writes them into `self.z` and `self.a`, so a second forward call silently replaces "
        "what `backpropagation` will read. Under `jit` the JAX function is traced once per shape and compiled; the "
        "PyTorch module runs operation by operation, recording a graph for autograd as it goes.",
    ),
    Step(
        "Loss",
        "cross-entropy: L = -(1/B) sum_i log softmax(a[L]_i)[y_i];   SSE: L = sum (a[L] - y)^2;   MSE: SSE / (B n_L)",
        (Excerpt(losses.log_softmax), Excerpt(losses.cross_entropy), Excerpt(losses.sse)),
        (Excerpt(mynet.sse_loss), Excerpt(torch_train.train_epoch, "outputs = model(imgs)", "loss = loss_fn")),
        "Both subtract the row maximum before exponentiating (`torch.nn.CrossEntropyLoss` does it internally), "
        "so logits of +/-1000 give a finite loss. In JAX the loss is an ordinary function of arrays; in PyTorch it "
        "is a module whose output tensor remembers how it was made, which is what `loss.backward()` walks.",
    ),
    Step(
        "Output local gradient (BP1)",
        "delta[L] = dL/da[L] * f_L'(z[L]);   cross-entropy: dL/da[L] = (softmax(a[L]) - onehot(y)) / B;   "
        "SSE: dL/da[L] = 2 (a[L] - y)",
        (Excerpt(losses.cross_entropy_grad), Excerpt(losses.sse_grad), Excerpt(activations.relu_prime),
         Excerpt(activations.tanh_prime)),
        (Excerpt(mynet.backpropagation, "dL_da = 2", "dL_da = 2"), Excerpt(mynet, "ACTIVATIONS: dict", '"identity"')),
        "Each jaxmlp loss and activation sits beside its derivative, as a pair of pure functions; `MyNet` keeps "
        "`f` and `df` in dicts on the instance. ReLU's derivative at exactly 0 is 0 on both sides (`z > 0`), as "
        "PyTorch's autograd has it.",
    ),
    Step(
        "Hidden local gradients (BP2)",
        "delta[l] = (delta[l+1] W[l+1]) * f_l'(z[l])   for l = L-1..1",
        (Excerpt(backprop.backward_pass),),
        (Excerpt(mynet.backpropagation),),
        "The same loop from the output layer down. `backward_pass` reads the cache it is given and returns the "
        "gradients and the deltas as a new value; `backpropagation` reads `model.z` and `model.a` and stores into "
        "`model.dL_dw` and `model.dL_db`, under `torch.no_grad()` so that its arithmetic is not itself recorded.",
    ),
    Step(
        "Weight and bias gradients (BP3, BP4)",
        "dL/dW[l] = delta[l]^T a[l-1],   dL/db[l] = sum over the batch of delta[l],   dL/da[l-1] = delta[l] W[l]",
        (Excerpt(layers.affine_backward),),
        (Excerpt(mynet.backpropagation, "model.dL_dw[l] =", "dL_da = delta @"),),
        "jaxmlp skips `dL/da[0]` unless asked (nobody needs the gradient with respect to the images); the "
        "`custom_vjp` of `forward` asks for it, and XLA removes it again when it is unused. PyTorch's autograd "
        "puts these gradients in each parameter's `.grad`, where they *accumulate* across `backward()` calls.",
    ),
    Step(
        "Weight decay",
        "g_t = grad_t + lambda p_{t-1}   (added to the gradient, before momentum)",
        (Excerpt(optim.sgd_update, "g = -grad if", "g = g + wd"),),
        (Excerpt(torch_train.ManualSGD.step, "g = p.grad", "g = p.grad"),),
        "Weight decay here is L2 regularisation folded into the gradient, exactly as `torch.optim.SGD` does it (not "
        "decoupled as in AdamW). In jaxmlp `lambda` may be a traced array, so a grid of decays is one program; the "
        "PyTorch loop tests `if self.weight_decay` in Python on every step.",
    ),
    Step(
        "Momentum, dampening and Nesterov",
        "b_1 = g_1;   b_t = mu b_{t-1} + (1 - tau) g_t  (t > 1);   g_t = g_t + mu b_t (Nesterov) or b_t;   "
        "p_t = p_{t-1} - eta g_t",
        (Excerpt(optim.SGDState), Excerpt(optim.sgd_init), Excerpt(optim.sgd_update)),
        (Excerpt(torch_train.ManualSGD.step),),
        "The momentum buffer is state: jaxmlp returns a new `SGDState` (buffer and step count) and the caller "
        "threads it through; `ManualSGD` keeps a dict of buffers keyed by parameter and updates `p` in place. "
        "The first step uses the gradient itself as the buffer (no dampening then): jaxmlp selects it with "
        "`jnp.where(step == 0, ...)` because a Python `if` on a traced value cannot be compiled.",
    ),
    Step(
        "One training step",
        "(L, dL/dtheta) = loss_and_grads(theta; x, y);   (theta, state) = sgd_update(opt, dL/dtheta, state, theta)",
        (Excerpt(train.train_step), Excerpt(backprop.loss_grads_and_output)),
        (Excerpt(torch_train.train_epoch, "outputs = model(imgs)", "update()"),),
        "A JAX step is a function from (state, batch) to (new state, metrics); nothing else changes, so the same "
        "inputs always give the same outputs and the step can be jitted, vmapped or scanned. The PyTorch step "
        "must zero the gradients first, because `backward()` adds to `.grad`, and then mutates the parameters.",
    ),
    Step(
        "An epoch",
        "for k = 1..ceil(n / B): theta <- step(theta; batch_k)   (the last batch holds n mod B samples)",
        (Excerpt(train.make_batches), Excerpt(train.train_epoch)),
        (Excerpt(torch_train.train_epoch), Excerpt(backends.TensorBatches.__iter__)),
        "jaxmlp cuts the data into a stack of equal batches once and runs the epoch as one `lax.scan` (one "
        "compiled loop, no Python per step), then one extra step for the smaller last batch; PyTorch iterates "
        "over a loader in Python. Shuffling, when asked, comes from one NumPy permutation per epoch, seeded by "
        "(seed, epoch), so both frameworks see the same batches.",
    ),
    Step(
        "The hyperparameter grid",
        "for each config c = (eta, mu, tau, lambda): theta_c <- train(theta_0; c)   (every config from the same theta_0)",
        (Excerpt(grid.stack_configs), Excerpt(grid.replicate), Excerpt(backends._grid_epoch)),
        (Excerpt(backends.TorchBackend.start), Excerpt(backends.TorchBackend.run_epoch)),
        "Because hyperparameters are arrays, jaxmlp stacks the configs on a leading axis and `vmap`s the epoch: "
        "the whole grid is one compiled program (and that axis can be sharded across devices). The imperative "
        "reference builds one model and one optimizer per config and trains them one after another.",
    ),
    Step(
        "Selection and evaluation",
        "c* = argmax_c accuracy_val(theta_c)   (ties: lower validation loss, then grid order);   "
        "report accuracy_test(theta_c*) once",
        (Excerpt(train.evaluate), Excerpt(study.select), Excerpt(study.evaluate_test)),
        (Excerpt(torch_train.evaluate),),
        "Selection and the single test evaluation are shared code: both backends feed the same `select`, and the "
        "test split is a `SealedTestSet` that raises if opened twice. Evaluating in PyTorch needs `model.eval()` "
        "and `torch.no_grad()` to stop graph recording; a JAX forward pass records nothing unless asked to.",
    ),
)


def guide() -> str:
    """The whole guide, as Markdown."""
    out = [
        "# Backpropagation and SGD, functional and imperative, side by side",
        "",
        "<!-- Generated by `python -m experiments.side_by_side` from the source files; do not edit by hand. "
        "tests/test_side_by_side.py fails when this file is stale. -->",
        "",
        "Notation (one row per sample, layers l = 1..L): `a[l]` activations, `z[l]` pre-activations, `W[l]` "
        "(n_l, n_{l-1}) and `b[l]` (n_l,) the parameters, `f_l` the activation and `f_l'` its derivative, "
        "`delta[l] = dL/dz[l]` the local gradient, `B` the batch size. Left: `jaxmlp` (pure functions, explicit "
        "state). Right: `torchref` (modules, in-place updates). Run `python -m experiments.side_by_side --demo` "
        "to see every quantity computed both ways on the same numbers.",
        "",
    ]
    for i, step in enumerate(STEPS, start=1):
        out += [f"## {i}. {step.title}", "", "```text", step.equation, "```", ""]
        for side, excerpts in (("jaxmlp", step.jax), ("torchref", step.torch)):
            for e in excerpts:
                out += [f"**{side}** — `{e.where}`", "", "```python", e.text(), "```", ""]
        out += [f"*What differs.* {step.differs}", ""]
    return "\n".join(out)


# ------------------------------------------------------------------ the demo


def _row(name: str, ours: np.ndarray, theirs: np.ndarray) -> tuple[str, str, float, float]:
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    diff = float(np.abs(ours - theirs).max())
    return name, str(ours.shape), float(np.abs(theirs).max()), diff


def demo_rows(seed: int = 0) -> list[tuple[str, str, float, float]]:
    """Every quantity of the walk-through on one small network and one batch: (name, shape, max|value|, max|diff|)."""
    spec = jm.MLPSpec((6, 5, 4, 3), ("tanh", "relu", "identity"))
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = tr.MyNet(spec.sizes, spec.activations).double()
    weights = tr.numpy_params(net)
    x, y = rng.normal(size=(8, 6)), rng.normal(size=(8, 3))
    params = jm.params_from_numpy(weights)

    # jaxmlp: values returned by pure functions.
    cache = jm.forward_pass(spec, params, jnp.asarray(x))
    loss = jm.losses.sse(cache.a[-1], jnp.asarray(y))
    grads = jm.backward_pass(spec, params, cache, jm.losses.sse_grad(cache.a[-1], jnp.asarray(y)))

    # torchref: values stored on the module, deltas from autograd via retain_grad, gradients from backpropagation.
    out = net(torch.as_tensor(x))
    for l in range(1, net.L + 1):
        net.z[l].retain_grad()
    torch_loss = tr.sse_loss(out, torch.as_tensor(y))
    torch_loss.backward()
    tr.backpropagation(net, torch.as_tensor(y), out)

    rows = []
    for l in range(1, spec.n_layers + 1):
        rows.append(_row(f"z[{l}]", cache.z[l - 1], net.z[l].detach()))
        rows.append(_row(f"a[{l}]", cache.a[l], net.a[l].detach()))
    rows.append(_row("loss L (SSE)", loss, torch_loss.detach()))
    for l in range(spec.n_layers, 0, -1):
        rows.append(_row(f"delta[{l}] (autograd)", grads.deltas[l - 1], net.z[l].grad))
    for l in range(1, spec.n_layers + 1):
        rows.append(_row(f"dL/dW[{l}] (backpropagation)", grads.params[l - 1].W, net.dL_dw[l]))
        rows.append(_row(f"dL/db[{l}] (backpropagation)", grads.params[l - 1].b, net.dL_db[l]))
        rows.append(_row(f"dL/dW[{l}] (autograd .grad)", grads.params[l - 1].W, net.fc[str(l)].weight.grad))

    # Two SGD steps with every option that combines: weight decay, momentum, dampening.
    kwargs = dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)
    opt = torch.optim.SGD(net.parameters(), **kwargs)
    state = jm.sgd_init(params)
    for t in (1, 2):
        opt.step()
        params, state = jm.sgd_update(jm.SGD(**kwargs), grads.params, state, params)
        rows.append(_row(f"W[1] after SGD step {t}", params[0].W, net.fc["1"].weight.detach()))
        rows.append(_row(f"momentum buffer b[W1] after step {t}", state.momentum_buffer[0].W,
                         opt.state[net.fc["1"].weight]["momentum_buffer"]))
    return rows


def print_demo() -> float:
    rows = demo_rows()
    print("One network (6-5-4-3, tanh/relu/identity), one batch of 8, SSE loss, float64.")
    print("jaxmlp values come back from pure functions; torchref values are read off the module after its calls.\n")
    print(f"{'quantity':<38} {'shape':>9} {'max |value|':>12} {'max |jax - torch|':>18}")
    for name, shape, size, diff in rows:
        print(f"{name:<38} {shape:>9} {size:>12.4g} {diff:>18.2e}")
    worst = max(diff / max(size, 1e-300) for _, _, size, diff in rows)
    print(f"\nlargest difference relative to the quantity's size: {worst:.2e} (float64 rounding is ~1e-16)")
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="compute every quantity both ways and print them")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/side_by_side.md is not what the code generates")
    args = parser.parse_args(argv)
    if not jax.config.jax_enable_x64:
        raise SystemExit("run with JAX_ENABLE_X64=1 (the default when run directly).")
    if args.demo:
        print_demo()
        return 0
    text = guide()
    if args.check:
        stale = not GUIDE.is_file() or GUIDE.read_text() != text
        print(f"{GUIDE} is {'stale: run python -m experiments.side_by_side' if stale else 'up to date'}")
        return int(stale)
    GUIDE.parent.mkdir(parents=True, exist_ok=True)
    GUIDE.write_text(text)
    print(f"wrote {GUIDE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
