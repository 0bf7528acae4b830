"""Bad input to jaxmlp fails early with an error that names the problem and the fix."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmlp as jm

SPEC = jm.MLPSpec((6, 4, 3), ("relu", "identity"))


@pytest.fixture
def good():
    params = jm.init_params(SPEC, jax.random.key(0), jnp.float64)
    return params, jnp.ones((5, 6)), jnp.array([0, 1, 2, 0, 1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sizes=(6,), activations=()), "at least one layer"),
        (dict(sizes=(6, 0), activations=("relu",)), r"sizes\[1\] = 0"),
        (dict(sizes=(6, 2.5), activations=("relu",)), "positive integer"),
        (dict(sizes=(6, 4, 3), activations=("relu",)), "one activation per layer"),
        (dict(sizes=(6, 4), activations=("softplus",)), "unknown"),
    ],
)
def test_invalid_spec(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jm.MLPSpec(**kwargs)


def test_spec_is_hashable_and_coerces_lists():
    a = jm.MLPSpec([6, 4, 3], ["relu", "identity"])
    assert a == SPEC and hash(a) == hash(SPEC)


def test_wrong_input_width(good):
    params, _, y = good
    for fn in (lambda x: jm.loss_and_grads(SPEC, params, x, y), lambda x: jm.forward(SPEC, params, x)):
        with pytest.raises(ValueError, match=r"x has shape \(5, 7\).*expects \(batch, 6\)"):
            fn(jnp.ones((5, 7)))
    with pytest.raises(ValueError, match="x has shape"):
        jm.forward(SPEC, params, jnp.ones(6))  # no batch axis


def test_images_are_flattened(good):
    params, x, y = good
    out = jm.forward(SPEC, params, x.reshape(5, 1, 2, 3))
    np.testing.assert_array_equal(out, jm.forward(SPEC, params, x))


@pytest.mark.parametrize(
    "labels, error, match",
    [
        (jnp.array([[0], [1], [2], [0], [1]]), ValueError, r"y has shape \(5, 1\).*shape \(5,\)"),
        (jnp.array([0, 1, 2]), ValueError, r"shape \(5,\)"),
        (jnp.array([0, 1, 3, 0, 1]), ValueError, r"labels must lie in \[0, 3\).*relabel"),
        (jnp.array([0, -1, 2, 0, 1]), ValueError, "labels must lie"),
        (jnp.array([0.0, 1.0, 2.0, 0.0, 1.0]), TypeError, "integer labels"),
    ],
)
def test_bad_labels_for_cross_entropy(good, labels, error, match):
    params, x, _ = good
    with pytest.raises(error, match=match):
        jm.loss_and_grads(SPEC, params, x, labels)


def test_bad_targets_for_squared_errors(good):
    params, x, _ = good
    with pytest.raises(ValueError, match=r"mse needs targets of shape \(5, 3\)"):
        jm.loss_and_grads(SPEC, params, x, jnp.ones((5, 2)), loss="mse")
    with pytest.raises(TypeError, match="y has dtype float32"):
        jm.loss_and_grads(SPEC, params, x, jnp.ones((5, 3), jnp.float32), loss="sse")
    with pytest.raises(ValueError, match="NaN"):
        jm.loss_and_grads(SPEC, params, x, jnp.full((5, 3), jnp.nan), loss="mse")


def test_nan_inputs(good):
    params, x, y = good
    with pytest.raises(ValueError, match="NaN or infinite"):
        jm.loss_and_grads(SPEC, params, x.at[2, 3].set(jnp.nan), y)


def test_unknown_loss(good):
    params, x, y = good
    with pytest.raises(ValueError, match="loss='hinge' is unknown"):
        jm.loss_and_grads(SPEC, params, x, y, loss="hinge")


def test_params_not_matching_spec(good):
    params, x, y = good
    with pytest.raises(ValueError, match="tuple of 2 Layer"):
        jm.loss_and_grads(SPEC, params[:1], x, y)
    other = jm.init_params(jm.MLPSpec((6, 5, 3), ("relu", "identity")), jax.random.key(0), jnp.float64)
    with pytest.raises(ValueError, match=r"layer 1 .* W \(4, 6\)"):
        jm.loss_and_grads(SPEC, other, x, y)
    with pytest.raises(ValueError, match="params must be a tuple"):
        jm.forward(SPEC, {"W": 1}, x)


def test_mixed_dtypes(good):
    params, x, y = good
    with pytest.raises(TypeError, match=r"x has dtype float32 but params are float64; cast with x.astype"):
        jm.loss_and_grads(SPEC, params, x.astype(jnp.float32), y)
    mixed = (params[0], jm.Layer(params[1].W.astype(jnp.float32), params[1].b.astype(jnp.float32)))
    with pytest.raises(TypeError, match="one floating dtype"):
        jm.forward(SPEC, mixed, x)


def test_spec_must_be_a_spec(good):
    params, x, y = good
    with pytest.raises(TypeError, match="MLPSpec"):
        jm.forward((6, 4, 3), params, x)


def test_init_params_rejects_integer_dtype():
    with pytest.raises(TypeError, match="floating"):
        jm.init_params(SPEC, jax.random.key(0), jnp.int32)


def test_params_from_numpy_rejects_bad_layouts():
    with pytest.raises(ValueError, match=r"W \(n_out, n_in\)"):
        jm.params_from_numpy([(np.zeros((4, 6)), np.zeros(6))])


def test_checks_are_static_under_jit(good):
    """Shape errors still fire inside jit (at trace time, before anything runs)."""
    params, x, y = good
    with pytest.raises(ValueError, match="x has shape"):
        jax.jit(lambda p, xx: jm.loss_and_grads(SPEC, p, xx, y))(params, jnp.ones((5, 7)))


def test_train_epoch_and_evaluate_check_their_inputs(good):
    params, x, y = good
    state = jm.init_train_state(params)
    opt = jm.SGD(lr=0.1)
    with pytest.raises(ValueError, match="x has shape"):
        jm.train_epoch(SPEC, "cross_entropy", opt, state, jm.make_batches(jnp.ones((5, 7)), y, 2))
    with pytest.raises(ValueError, match="labels must lie"):
        jm.train_epoch(SPEC, "cross_entropy", opt, state, jm.make_batches(x, y + 5, 2))
    with pytest.raises(ValueError, match="labels must lie"):  # only in the second batch
        jm.train_epoch(SPEC, "cross_entropy", opt, state, jm.make_batches(x, y.at[3].set(9), 2))
    with pytest.raises(ValueError, match="labels must lie"):  # only in the last, partial batch
        jm.train_epoch(SPEC, "cross_entropy", opt, state, jm.make_batches(x, y.at[4].set(9), 2))
    with pytest.raises(TypeError, match="x has dtype float32"):
        jm.evaluate(SPEC, "cross_entropy", params, x.astype(jnp.float32), y)
    new_state, metrics = jm.train_epoch(SPEC, "cross_entropy", opt, state, jm.make_batches(x, y, 8))  # only a partial batch
    assert 0 <= float(metrics.accuracy) <= 1 and int(new_state.opt_state.step) == 1
