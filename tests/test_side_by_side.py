"""The side-by-side guide is what the generator makes from today's code, and the demo agrees to rounding."""

from __future__ import annotations

import inspect

import jaxmlp as jm
import torchref as tr
from experiments import side_by_side as sbs

REQUIRED_STEPS = [
    "Forward pass", "Loss", "Output local gradient", "Hidden local gradients", "Weight and bias gradients",
    "Weight decay", "Momentum, dampening and Nesterov", "One training step", "An epoch", "The hyperparameter grid",
    "Selection and evaluation",
]


def test_committed_guide_is_up_to_date():
    assert sbs.GUIDE.read_text() == sbs.guide(), "docs/side_by_side.md is stale: run python -m experiments.side_by_side"


def test_guide_walks_every_step_in_order_with_both_sides():
    titles = [step.title for step in sbs.STEPS]
    positions = [next(i for i, t in enumerate(titles) if t.startswith(required)) for required in REQUIRED_STEPS]
    assert positions == sorted(positions)
    for step in sbs.STEPS:
        assert step.jax and step.torch and step.equation and step.differs.count(".") >= 2


def test_guide_quotes_the_running_source():
    text = sbs.guide()
    for fn in (jm.sgd_update, jm.backward_pass, tr.backpropagation, tr.MyNet.forward):
        assert inspect.getsource(fn).strip().splitlines()[-1].strip() in text


def test_demo_agrees_to_float64_rounding():
    rows = sbs.demo_rows()
    names = [r[0] for r in rows]
    for expected in ("z[1]", "a[3]", "loss L (SSE)", "delta[1] (autograd)", "dL/dW[2] (backpropagation)",
                     "dL/db[3] (backpropagation)", "W[1] after SGD step 2", "momentum buffer b[W1] after step 2"):
        assert expected in names
    for name, _, size, diff in rows:
        assert diff <= 1e-14 * max(size, 1.0), name
    assert all(size > 0 for _, _, size, _ in rows)  # nothing trivially zero
