"""Gradient parity: hand-written backward == plain JAX autodiff == PyTorch autograd == torchref.backpropagation."""

from __future__ import annotations

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from helpers import as_jax, max_rel_err, mynet, random_batch, random_weights, torch_loss
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxmlp as jm
import torchref as tr

GRAD_RTOL = 1e-12


@st.composite
def cases(draw, losses=("cross_entropy", "mse", "sse")):
    depth = draw(st.integers(1, 4))
    sizes = tuple(draw(st.lists(st.integers(1, 64), min_size=depth + 1, max_size=depth + 1)))
    activations = tuple(draw(st.lists(st.sampled_from(sorted(jm.ACTIVATIONS)), min_size=depth, max_size=depth)))
    return jm.MLPSpec(sizes, activations), draw(st.sampled_from(losses)), draw(st.integers(1, 64)), draw(st.integers(0, 2**32 - 1))


def torch_autograd(spec, weights, x, y, loss):
    net = mynet(spec, weights)
    value = torch_loss(loss, net(torch.as_tensor(x)), torch.as_tensor(y))
    value.backward()
    return value.item(), [(net.fc[str(l)].weight.grad.numpy(), net.fc[str(l)].bias.grad.numpy()) for l in range(1, net.L + 1)]


def torchref_backprop(spec, weights, x, y):
    net = mynet(spec, weights)
    y_true = torch.as_tensor(y)
    tr.backpropagation(net, y_true, net(torch.as_tensor(x)))
    return [(net.dL_dw[l].numpy(), net.dL_db[l].numpy()) for l in range(1, net.L + 1)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_gradients_agree_four_ways(case):
    spec, loss, batch, seed = case
    rng = np.random.default_rng(seed)
    weights = random_weights(spec.sizes, rng)
    x, y = random_batch(spec, loss, batch, rng)
    params = jm.params_from_numpy(weights)
    value, grads = jm.loss_and_grads(spec, params, *as_jax(x, y), loss=loss)
    assert all(g.dtype == jnp.float64 for layer in grads for g in layer)

    autodiff = jax.grad(jm.loss_value, argnums=1)(spec, params, *as_jax(x, y), loss)
    torch_value, torch_grads = torch_autograd(spec, weights, x, y, loss)

    hand = jm.params_to_numpy(grads)
    assert max_rel_err(hand, jm.params_to_numpy(autodiff)) <= GRAD_RTOL
    assert max_rel_err(hand, torch_grads) <= GRAD_RTOL
    np.testing.assert_allclose(float(value), torch_value, rtol=GRAD_RTOL)
    if loss == "sse":
        assert max_rel_err(hand, torchref_backprop(spec, weights, x, y)) <= GRAD_RTOL


def test_four_way_check_can_fail():
    """A wrong backward (ReLU slope 1 at every z) must be caught by the same comparison."""
    spec = jm.MLPSpec((5, 7, 3), ("relu", "identity"))
    rng = np.random.default_rng(1)
    weights = random_weights(spec.sizes, rng)
    x, y = random_batch(spec, "mse", 16, rng)
    params = jm.params_from_numpy(weights)
    _, torch_grads = torch_autograd(spec, weights, x, y, "mse")
    cache = jm.forward_pass(spec, params, jnp.asarray(x))
    wrong_spec = jm.MLPSpec(spec.sizes, ("identity", "identity"))  # f' = 1 where ReLU's is 0
    dL_da = jm.LOSSES["mse"].grad(cache.a[-1], jnp.asarray(y))
    wrong = jm.backward_pass(wrong_spec, params, cache, dL_da).params
    assert max_rel_err(jm.params_to_numpy(wrong), torch_grads) > 1e-3


def _custom_loss(spec, params, x, y, loss="cross_entropy"):
    return jm.LOSSES[loss].value(jm.forward(spec, params, x), y)


@pytest.fixture(scope="module")
def small_case():
    spec = jm.MLPSpec((12, 16, 8, 3), ("relu", "tanh", "identity"))
    rng = np.random.default_rng(7)
    params = jm.params_from_numpy(random_weights(spec.sizes, rng))
    x, y = as_jax(*random_batch(spec, "cross_entropy", 10, rng))
    return spec, params, x, y


def _assert_trees_close(a, b, rtol=GRAD_RTOL):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert u.shape == v.shape and u.dtype == v.dtype
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=rtol * float(jnp.abs(v).max()))


def test_custom_vjp_grad_equals_loss_and_grads_under_jit(small_case):
    spec, params, x, y = small_case
    _, expected = jm.loss_and_grads(spec, params, x, y)
    eager = jax.grad(_custom_loss, argnums=1)(spec, params, x, y)
    jitted = jax.jit(jax.grad(_custom_loss, argnums=1), static_argnums=0)(spec, params, x, y)
    grad_of_jit = jax.grad(jax.jit(_custom_loss, static_argnums=0), argnums=1)(spec, params, x, y)
    for g in (eager, jitted, grad_of_jit):
        _assert_trees_close(g, expected)


def test_custom_vjp_under_vmap_over_parameter_sets(small_case):
    spec, _, x, y = small_case
    rng = np.random.default_rng(3)
    sets = [jm.params_from_numpy(random_weights(spec.sizes, rng)) for _ in range(4)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *sets)
    grad_fn = jax.grad(_custom_loss, argnums=1)
    vmapped = jax.vmap(grad_fn, in_axes=(None, 0, None, None))(spec, stacked, x, y)
    jit_vmapped = jax.jit(jax.vmap(grad_fn, in_axes=(None, 0, None, None)), static_argnums=0)(spec, stacked, x, y)
    vmap_jitted = jax.vmap(jax.jit(grad_fn, static_argnums=0), in_axes=(None, 0, None, None))(spec, stacked, x, y)
    one_by_one = jax.tree.map(lambda *a: jnp.stack(a), *(jm.loss_and_grads(spec, p, x, y)[1] for p in sets))
    for g in (vmapped, jit_vmapped, vmap_jitted):
        _assert_trees_close(g, one_by_one)


def test_custom_vjp_inside_scan_of_sgd_steps(small_case):
    spec, params, x, y = small_case
    opt = jm.SGD(lr=0.1, momentum=0.9)
    xs = jnp.stack([x, -x, 2 * x])

    def step(carry, xb):
        p, s = carry
        g = jax.grad(_custom_loss, argnums=1)(spec, p, xb, y)
        return jm.sgd_update(opt, g, s, p), None

    for run in (lambda c: jax.lax.scan(step, c, xs)[0], jax.jit(lambda c: jax.lax.scan(step, c, xs)[0])):
        p_scan, _ = run((params, jm.sgd_init(params)))
        p_loop, s_loop = params, jm.sgd_init(params)
        for xb in xs:
            p_loop, s_loop = jm.sgd_update(opt, jm.loss_and_grads(spec, p_loop, xb, y)[1], s_loop, p_loop)
        _assert_trees_close(p_scan, p_loop)


def test_custom_vjp_grad_of_scan_and_second_order(small_case):
    """Reverse over scan, and reverse over reverse: the hand-written rule is itself differentiable."""
    spec, params, x, y = small_case

    def unrolled(loss_fn):
        def total(p):
            return jax.lax.scan(lambda c, xb: (c + loss_fn(spec, p, xb, y), None), 0.0, jnp.stack([x, 0.5 * x]))[0]
        return total

    _assert_trees_close(jax.grad(unrolled(_custom_loss))(params), jax.grad(unrolled(jm.loss_value))(params))
    v = jax.tree.map(jnp.ones_like, params)

    def hvp(loss_fn):
        return jax.grad(lambda p: jax.tree.reduce(
            jnp.add, jax.tree.map(jnp.vdot, jax.grad(loss_fn, argnums=1)(spec, p, x, y), v)))(params)

    _assert_trees_close(hvp(_custom_loss), hvp(jm.loss_value), rtol=1e-10)


def test_custom_vjp_passes_jax_check_grads(small_case):
    spec, params, x, y = small_case
    # order 1 checks the VJP against finite differences; forward mode is unavailable through custom_vjp.
    check_grads(lambda p, xx: _custom_loss(spec, p, xx, y), (params, x), order=1, modes=["rev"], eps=1e-6)
    check_grads(lambda xx: jm.forward(spec, params, xx), (x,), order=1, modes=["rev"], eps=1e-6)


def test_input_gradient_matches_autodiff(small_case):
    spec, params, x, y = small_case
    expected = jax.grad(lambda xx: jm.loss_value(spec, params, xx, y))(x)
    _assert_trees_close(jax.grad(lambda xx: _custom_loss(spec, params, xx, y))(x), expected)
    images = x.reshape(10, 3, 2, 2)  # (batch, ...) is flattened; the cotangent keeps the input's shape
    assert jax.grad(lambda xx: _custom_loss(spec, params, xx, y))(images).shape == images.shape


def _kink_free_case(spec, loss, batch, seed, margin=1e-2):
    """Weights and a batch whose ReLU pre-activations all satisfy |z| > margin (resampled until they do)."""
    rng = np.random.default_rng(seed)
    while True:
        weights = random_weights(spec.sizes, rng)
        x, y = random_batch(spec, loss, batch, rng)
        params = jm.params_from_numpy(weights)
        cache = jm.forward_pass(spec, params, jnp.asarray(x))
        if all(float(jnp.abs(z).min()) > margin for z, f in zip(cache.z, spec.activations) if f == "relu"):
            return params, *as_jax(x, y)


@settings(max_examples=15, deadline=None)
@given(cases())
def test_finite_differences_agree(case):
    spec, loss, batch, seed = case
    spec = jm.MLPSpec(tuple(min(n, 12) for n in spec.sizes), spec.activations)  # keep the O(P) evaluations cheap
    params, x, y = _kink_free_case(spec, loss, min(batch, 8), seed)
    assert jm.gradient_check(spec, params, x, y, loss) <= 1e-7


def test_finite_differences_detect_a_wrong_gradient():
    spec = jm.MLPSpec((4, 5, 2), ("tanh", "identity"))
    params, x, y = _kink_free_case(spec, "cross_entropy", 6, 0)
    fd = jm.finite_difference_grads(spec, params, x, y)
    _, grads = jm.loss_and_grads(spec, params, x, y)
    assert max(max(e) for e in jm.relative_errors(grads, fd)) <= 1e-7
    off = (grads[0]._replace(W=grads[0].W.at[0, 0].mul(1.001)), grads[1])
    assert max(max(e) for e in jm.relative_errors(off, fd)) > 1e-7


def test_relu_derivative_at_zero_is_zero_like_torch():
    spec = jm.MLPSpec((2, 2), ("relu",))
    params = (jm.Layer(jnp.eye(2), jnp.zeros(2)),)
    x = jnp.array([[0.0, 1.0]])  # z = (0, 1): exactly at the kink for the first unit
    cot = jnp.ones((1, 2))
    _, vjp = jax.vjp(lambda p: jm.forward(spec, p, x), params)
    (g,) = vjp(cot)
    xt = torch.tensor([[0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    torch.relu(xt).sum().backward()
    np.testing.assert_array_equal(np.asarray(jax.grad(lambda z: jm.activations.relu(z).sum())(x[0])), xt.grad.numpy()[0])
    np.testing.assert_array_equal(np.asarray(g[0].b), [0.0, 1.0])


@pytest.mark.parametrize("scale", [1000.0, -1000.0])
def test_cross_entropy_is_stable_for_huge_logits(scale):
    out = jnp.array([[scale, 0.0, -scale], [0.0, scale, 1.0]])
    y = jnp.array([2, 1])
    value = jm.losses.cross_entropy(out, y)
    grad = jm.losses.cross_entropy_grad(out, y)
    expected = torch.nn.functional.cross_entropy(torch.tensor(np.asarray(out)), torch.tensor(np.asarray(y)))
    assert np.isfinite(float(value)) and bool(jnp.isfinite(grad).all())
    np.testing.assert_allclose(float(value), expected.item(), rtol=1e-15)


def _count_dots(jaxpr) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == "dot_general"
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            count += _count_dots(sub)
    return count


def test_training_backward_skips_the_input_gradient(small_case):
    """L forward matmuls + 2L - 1 backward ones: dW for every layer, dL/da[l-1] for all but the first."""
    spec, params, x, y = small_case
    jaxpr = jax.make_jaxpr(lambda p: jm.loss_and_grads(spec, p, x, y))(params)
    assert _count_dots(jaxpr.jaxpr) == 3 * spec.n_layers - 1
    with_input = jax.make_jaxpr(lambda p, xx: jax.grad(_custom_loss, argnums=(1, 2))(spec, p, xx, y))(params, x)
    assert _count_dots(with_input.jaxpr) == 3 * spec.n_layers  # the custom_vjp path does form dL/dx when asked
