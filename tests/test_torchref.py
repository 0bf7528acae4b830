"""torchref keeps the course's interface and harness semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torchref as tr


def toy_data(n_l, n=10, seed=0):
    """The course harness's toy set: x_i = i + noise, y_i = [(-1)^j i for each output j]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.stack([i + torch.randn((1, n_l[0]), generator=g, dtype=torch.float64) for i in range(n)])
    y = torch.stack([torch.tensor([[(-1.0) ** j * i for j in range(n_l[-1])]], dtype=torch.float64) for i in range(n)])
    return x, y


def finite_difference_residual(model, x, y, eps=1e-5):
    """The harness's check: perturb each weight of a *copy* built by MyNet(model.n_l) + load_state_dict."""
    approx, ours = [], []
    loss_fn = nn.MSELoss(reduction="none")
    with torch.no_grad():
        for l in range(1, model.L + 1):
            for name, grad in (("weight", model.dL_dw[l]), ("bias", model.dL_db[l])):
                param = getattr(model.fc[str(l)], name)
                for idx in np.ndindex(*param.shape):
                    losses = []
                    for sign in (1, -1):
                        copy = tr.MyNet(model.n_l).double()
                        copy.load_state_dict(model.state_dict())
                        getattr(copy.fc[str(l)], name)[idx] += sign * eps
                        losses.append(loss_fn(copy(x), y).sum().item())
                    approx.append((losses[0] - losses[1]) / (2 * eps))
                    ours.append(grad[idx].item())
    approx, ours = torch.tensor(approx), torch.tensor(ours)
    return float(torch.norm(approx - ours) / (torch.norm(approx) + torch.norm(ours)))


def test_mynet_interface_is_the_courses():
    model = tr.MyNet([2, 3, 2])
    assert model.L == 2 and model.n_l == [2, 3, 2]
    assert isinstance(model.fc, nn.ModuleDict) and list(model.fc.keys()) == ["1", "2"]
    assert set(model.z) == {1, 2} and set(model.a) == {0, 1, 2}
    assert set(model.dL_dw) == set(model.dL_db) == set(model.f) == set(model.df) == {1, 2}
    z = torch.linspace(-3, 3, 7)
    torch.testing.assert_close(model.f[1](z), torch.tanh(z))  # tanh by default
    torch.testing.assert_close(model.df[1](z), 1 / torch.cosh(z) ** 2)


def test_course_harness_checks_pass():
    """Autograd comparison, finite differences, weights updated, graph intact: the course harness's four checks."""
    torch.manual_seed(123)
    model = tr.MyNet([2, 3, 2]).double()
    x, y = toy_data(model.n_l)
    w_init = model.fc["1"].weight.detach().clone()
    b_init = model.fc["1"].bias.detach().clone()
    loss_fn = nn.MSELoss(reduction="none")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    worst_autograd, worst_fd = 0.0, 0.0
    for _ in range(5):
        for xi, yi in zip(x, y):
            out = model(xi)
            loss_fn(out, yi).sum().backward()
            tr.backpropagation(model, yi, out)
            worst_fd = max(worst_fd, finite_difference_residual(model, xi, yi))
            for l in range(1, model.L + 1):
                for grad, ours in ((model.fc[str(l)].weight.grad, model.dL_dw[l]), (model.fc[str(l)].bias.grad, model.dL_db[l])):
                    worst_autograd = max(worst_autograd, float(torch.norm(grad - ours) / torch.norm(grad)))
            optimizer.step()
            optimizer.zero_grad()
    assert worst_autograd <= 1e-12
    assert worst_fd <= 1e-7  # the harness itself accepts up to its eps, 1e-4
    assert not torch.equal(w_init, model.fc["1"].weight) and not torch.equal(b_init, model.fc["1"].bias)
    for p in model.parameters():
        assert p.requires_grad and p.is_leaf


def test_backpropagation_is_vectorized_over_the_batch():
    torch.manual_seed(0)
    model = tr.MyNet([4, 5, 3], ["relu", "identity"]).double()
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    out = model(x)
    nn.MSELoss(reduction="none")(out, y).sum().backward()
    tr.backpropagation(model, y, out)
    for l in (1, 2):
        torch.testing.assert_close(model.dL_dw[l], model.fc[str(l)].weight.grad, rtol=1e-13, atol=0)
        torch.testing.assert_close(model.dL_db[l], model.fc[str(l)].bias.grad, rtol=1e-13, atol=0)
    assert out.requires_grad  # backpropagation must not detach the graph it reads


def test_mynet_rejects_bad_activations():
    with pytest.raises(ValueError, match="activations"):
        tr.MyNet([2, 3, 2], ["relu"])
    with pytest.raises(ValueError, match="activations"):
        tr.MyNet([2, 3, 2], ["relu", "swish"])


def _grads_seen_by_each_step(train_fn):
    """Feed the same batch twice with lr 0; record every parameter's .grad right after each update."""
    torch.manual_seed(1)
    model = tr.MyMLP((6, 5, 2)).double()
    batch = (torch.randn(4, 6, dtype=torch.float64), torch.tensor([0, 1, 1, 0]))
    seen = []

    def loader():
        for i in range(2):
            if i:
                seen.append([p.grad.clone() for p in model.parameters()])
            yield batch
        seen.append([p.grad.clone() for p in model.parameters()])

    train_fn(model, loader(), [batch])
    return seen


@pytest.mark.parametrize("kind", ["optim", "manual"])
def test_gradients_are_zeroed_every_step(kind):
    def run(model, loader, val):
        loss_fn = nn.CrossEntropyLoss()
        if kind == "optim":
            return tr.train(1, torch.optim.SGD(model.parameters(), lr=0.0), model, loss_fn, loader, val)
        return tr.train_manual_update(1, 0.0, model, loss_fn, loader, val, momentum=0.9)

    first, second = _grads_seen_by_each_step(run)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # accumulated gradients would be doubled


def test_manual_update_keeps_parameters_leaves_and_matches_optim():
    torch.manual_seed(2)
    a, b = tr.MyMLP((6, 5, 2)).double(), tr.MyMLP((6, 5, 2)).double()
    tr.load_numpy_params(b, tr.numpy_params(a))
    x, y = torch.randn(12, 6, dtype=torch.float64), torch.randint(0, 2, (12,))
    loader = [(x[:6], y[:6]), (x[6:], y[6:])]
    kwargs = dict(weight_decay=0.01, momentum=0.9, dampening=0.1)
    ha = tr.train(3, torch.optim.SGD(a.parameters(), lr=0.05, **kwargs), a, nn.CrossEntropyLoss(), loader, loader)
    hb = tr.train_manual_update(3, 0.05, b, nn.CrossEntropyLoss(), loader, loader, **kwargs)
    for (wa, ba), (wb, bb) in zip(tr.numpy_params(a), tr.numpy_params(b)):
        np.testing.assert_allclose(wa, wb, rtol=1e-13)
        np.testing.assert_allclose(ba, bb, rtol=1e-13)
    np.testing.assert_allclose(ha.train_loss, hb.train_loss, rtol=1e-13)
    assert len(ha.val_loss) == 3 and ha.train_loss[-1] < ha.train_loss[0]
    for p in b.parameters():
        assert p.is_leaf and p.requires_grad


def test_numpy_params_round_trip_and_shape_errors():
    model = tr.MyMLP((6, 5, 2)).double()
    weights = tr.numpy_params(model)
    assert [w.shape for w, _ in weights] == [(5, 6), (2, 5)]
    with pytest.raises(ValueError, match="layer 1"):
        tr.load_numpy_params(model, [(np.zeros((6, 5)), np.zeros(5)), weights[1]])
    with pytest.raises(ValueError, match="2 linear layers"):
        tr.load_numpy_params(model, weights[:1])
