"""SGD: validation and single-step semantics exactly as torch.optim.SGD; optax agrees where it has the feature."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxmlp as jm
import torchref as tr

INVALID = [
    dict(lr=-0.1),
    dict(lr=0.1, momentum=-0.5),
    dict(lr=0.1, weight_decay=-1e-3),
    dict(lr=0.1, nesterov=True),  # nesterov without momentum
    dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),  # nesterov with dampening
]


@pytest.mark.parametrize("kwargs", INVALID)
def test_invalid_hyperparameters_raise_like_torch(kwargs):
    with pytest.raises(ValueError):
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError):
        jm.SGD(**kwargs)
    with pytest.raises(ValueError):
        tr.ManualSGD([torch.zeros(1, requires_grad=True)], **{k: v for k, v in kwargs.items()})


@pytest.mark.parametrize("kwargs", [dict(lr=float("nan")), dict(lr=0.1, momentum=float("inf")), dict(lr=np.array([0.1, -0.1]))])
def test_non_finite_or_negative_array_values_raise(kwargs):
    with pytest.raises(ValueError, match="Invalid"):
        jm.SGD(**kwargs)


def test_non_numeric_and_non_bool_arguments_raise_type_error():
    with pytest.raises(TypeError, match="lr"):
        jm.SGD(lr="fast")
    with pytest.raises(TypeError, match="nesterov"):
        jm.SGD(lr=0.1, momentum=0.9, nesterov="yes")


def test_valid_edge_values_are_accepted():
    jm.SGD(lr=0.0)
    jm.SGD(lr=0.1, momentum=0.9, nesterov=True)
    jm.SGD(lr=0.1, momentum=0.9, dampening=0.5, maximize=True)


hyper = st.fixed_dictionaries(
    {
        "lr": st.sampled_from([0.0, 1e-3, 0.01, 0.5]),
        "momentum": st.sampled_from([0.0, 0.01, 0.5, 0.9]),
        "dampening": st.sampled_from([0.0, 0.1, 0.9]),
        "weight_decay": st.sampled_from([0.0, 0.01, 0.9]),
        "nesterov": st.booleans(),
        "maximize": st.booleans(),
    }
).filter(lambda h: not h["nesterov"] or (h["momentum"] > 0 and h["dampening"] == 0))


@settings(max_examples=60, deadline=None)
@given(hyper, st.integers(0, 2**32 - 1))
def test_sgd_update_matches_torch_for_several_steps(h, seed):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (3,), (2, 3), (2,)]
    p0 = [rng.normal(size=s) for s in shapes]
    grads = [[rng.normal(size=s) for s in shapes] for _ in range(4)]

    tparams = [torch.tensor(p, requires_grad=True) for p in p0]
    opt = torch.optim.SGD(tparams, **h)
    jopt = jm.SGD(**h)
    params = tuple(jnp.asarray(p) for p in p0)
    state = jm.sgd_init(params)
    update = jax.jit(jm.sgd_update)
    for g in grads:
        for t, gi in zip(tparams, g):
            t.grad = torch.tensor(gi)
        opt.step()
        params, state = update(jopt, tuple(jnp.asarray(gi) for gi in g), state, params)
        for t, p in zip(tparams, params):
            np.testing.assert_allclose(np.asarray(p), t.detach().numpy(), rtol=1e-14, atol=1e-15)
    assert int(state.step) == len(grads)


def test_first_step_uses_the_gradient_as_buffer_without_dampening():
    p = (jnp.array([1.0, 2.0]),)
    g = (jnp.array([0.5, -1.0]),)
    opt = jm.SGD(lr=0.1, momentum=0.9, dampening=0.5)
    p1, s1 = jm.sgd_update(opt, g, jm.sgd_init(p), p)
    np.testing.assert_array_equal(s1.momentum_buffer[0], g[0])  # not (1 - 0.5) * g
    np.testing.assert_allclose(p1[0], p[0] - 0.1 * g[0])
    p2, s2 = jm.sgd_update(opt, g, s1, p1)
    np.testing.assert_allclose(s2.momentum_buffer[0], 0.9 * g[0] + 0.5 * g[0])


def test_sgd_update_is_pure():
    p = (jnp.array([1.0, 2.0]),)
    state = jm.sgd_init(p)
    g = (jnp.array([0.5, -1.0]),)
    opt = jm.SGD(lr=0.1, momentum=0.9)
    a = jm.sgd_update(opt, g, state, p)
    b = jm.sgd_update(opt, g, state, p)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert int(state.step) == 0 and float(state.momentum_buffer[0][0]) == 0.0


def test_hyperparameters_are_traced_and_do_not_recompile():
    p = (jnp.ones(3),)
    g = (jnp.full(3, 0.5),)
    traces = []

    def counted(*args):
        traces.append(1)  # runs once per trace, i.e. once per compilation
        return jm.sgd_update(*args)

    compiled = jax.jit(counted)
    for lr, mom in [(0.1, 0.0), (0.2, 0.9), (0.05, 0.5)]:
        out, _ = compiled(jm.SGD(lr=lr, momentum=mom), g, jm.sgd_init(p), p)
        np.testing.assert_allclose(out[0], 1 - lr * 0.5)
    assert len(traces) == 1
    compiled(jm.SGD(lr=0.1, momentum=0.9, nesterov=True), g, jm.sgd_init(p), p)
    assert len(traces) == 2  # nesterov is static: a new program


def test_float32_params_stay_float32():
    p = (jnp.ones(3, jnp.float32),)
    out, state = jm.sgd_update(jm.SGD(lr=0.1, momentum=0.9, weight_decay=0.01), (jnp.ones(3, jnp.float32),), jm.sgd_init(p), p)
    assert out[0].dtype == jnp.float32 and state.momentum_buffer[0].dtype == jnp.float32


@pytest.mark.parametrize("wd,momentum,nesterov", [(0, 0, False), (0.01, 0.9, False), (0.9, 0.01, False), (0, 0.9, True)])
def test_optax_chain_matches_sgd_update(wd, momentum, nesterov):
    rng = np.random.default_rng(0)
    params = (jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=4)))
    tx = optax.chain(optax.add_decayed_weights(wd), optax.sgd(0.01, momentum, nesterov))
    ostate, state, p_opt, p_jm = tx.init(params), jm.sgd_init(params), params, params
    opt = jm.SGD(lr=0.01, momentum=momentum, weight_decay=wd, nesterov=nesterov)
    for _ in range(5):
        g = (jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=4)))
        updates, ostate = tx.update(g, ostate, p_opt)
        p_opt = optax.apply_updates(p_opt, updates)
        p_jm, state = jm.sgd_update(opt, g, state, p_jm)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-14), p_opt, p_jm)
