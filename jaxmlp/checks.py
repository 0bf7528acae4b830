"""Early, explicit input validation: every error names the argument and the fix.

Shape and dtype checks are static, so they run under ``jit``/``vmap`` too.
Value checks (NaN, label range) need concrete arrays: they run eagerly and are
skipped on tracers; the training loop runs them once on the whole data set
(`check_dataset`) before compiling anything.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmlp.losses import LOSSES
from jaxmlp.spec import MLPSpec


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds values (not a tracer inside ``jit``/``vmap``/``grad``)."""
    return not isinstance(x, jax.core.Tracer)


def check_spec(spec: Any) -> MLPSpec:
    if not isinstance(spec, MLPSpec):
        raise TypeError(f"spec must be an MLPSpec, got {type(spec).__name__}; build one with MLPSpec(sizes, activations).")
    return spec


def check_params(spec: MLPSpec, params: Any) -> jnp.dtype:
    """Check that ``params`` is one ``(W, b)`` per layer of ``spec``, all of one float dtype; return it."""
    check_spec(spec)
    if not isinstance(params, (tuple, list)) or len(params) != spec.n_layers:
        got = f"{len(params)} layers" if isinstance(params, (tuple, list)) else type(params).__name__
        raise ValueError(
            f"params must be a tuple of {spec.n_layers} Layer(W, b) for spec sizes {spec.sizes}, got {got}; "
            "create them with init_params(spec, key) or params_from_numpy(...)."
        )
    dtypes = set()
    for l, (layer, n_in, n_out) in enumerate(zip(params, spec.sizes[:-1], spec.sizes[1:]), start=1):
        if not (isinstance(layer, tuple) and len(layer) == 2):
            raise ValueError(f"params[{l - 1}] must be a Layer(W, b) pair, got {type(layer).__name__}.")
        W, b = layer
        if jnp.shape(W) != (n_out, n_in) or jnp.shape(b) != (n_out,):
            raise ValueError(
                f"params of layer {l} have W {jnp.shape(W)} and b {jnp.shape(b)}, but the spec needs "
                f"W ({n_out}, {n_in}) and b ({n_out},); params do not match spec sizes {spec.sizes}."
            )
        dtypes.update({jnp.result_type(W), jnp.result_type(b)})
    if len(dtypes) != 1 or not jnp.issubdtype(next(iter(dtypes)), jnp.floating):
        raise TypeError(
            f"params must all share one floating dtype, got {sorted(map(str, dtypes))}; "
            "cast them, e.g. jax.tree.map(lambda p: p.astype(jnp.float64), params)."
        )
    return next(iter(dtypes))


def check_inputs(spec: MLPSpec, dtype: jnp.dtype, x: Any) -> None:
    """``x: (batch, ...)`` with ``prod(...) == sizes[0]`` and the params' dtype."""
    shape = jnp.shape(x)
    if len(shape) < 2 or int(np.prod(shape[1:])) != spec.sizes[0]:
        raise ValueError(
            f"x has shape {shape}, but the network expects (batch, {spec.sizes[0]}) "
            f"(or (batch, ...) with {spec.sizes[0]} features per sample); reshape x or fix spec.sizes[0]."
        )
    if jnp.result_type(x) != dtype:
        raise TypeError(
            f"x has dtype {jnp.result_type(x)} but params are {dtype}; cast with x.astype({dtype}) "
            "(mixing dtypes would silently promote or lose precision)."
        )
    if is_concrete(x) and not np.isfinite(np.asarray(x)).all():
        raise ValueError("x contains NaN or infinite values; clean or re-normalise the data before training.")


def check_targets(spec: MLPSpec, dtype: jnp.dtype, loss: str, y: Any, batch: int) -> None:
    """Integer labels ``(batch,)`` in ``[0, n_out)`` for cross-entropy, float targets ``(batch, n_out)`` otherwise."""
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is unknown; choose one of {sorted(LOSSES)}.")
    n_out = spec.sizes[-1]
    shape, y_dtype = jnp.shape(y), jnp.result_type(y)
    if loss == "cross_entropy":
        if shape != (batch,):
            raise ValueError(
                f"y has shape {shape}; cross_entropy needs integer class labels of shape ({batch},), "
                "one per sample (not one-hot)."
            )
        if not jnp.issubdtype(y_dtype, jnp.integer):
            raise TypeError(f"y has dtype {y_dtype}; cross_entropy needs integer labels, e.g. y.astype(jnp.int32).")
        labels = np.asarray(y) if is_concrete(y) else None
        if labels is not None and batch and not ((labels >= 0) & (labels < n_out)).all():
            raise ValueError(
                f"labels must lie in [0, {n_out}) for {n_out} outputs, got values from "
                f"{labels.min()} to {labels.max()}; relabel the classes 0..{n_out - 1}."
            )
    else:
        if shape != (batch, n_out):
            raise ValueError(f"y has shape {shape}; {loss} needs targets of shape ({batch}, {n_out}).")
        if y_dtype != dtype:
            raise TypeError(f"y has dtype {y_dtype} but params are {dtype}; cast with y.astype({dtype}).")
        if is_concrete(y) and not np.isfinite(np.asarray(y)).all():
            raise ValueError("y contains NaN or infinite values; clean the targets before training.")


def check_batch(spec: MLPSpec, params: Any, x: Any, y: Any, loss: str) -> jnp.dtype:
    """All checks for one ``(x, y)`` batch against ``params``; returns the params' dtype."""
    dtype = check_params(spec, params)
    check_inputs(spec, dtype, x)
    check_targets(spec, dtype, loss, y, jnp.shape(x)[0])
    return dtype
