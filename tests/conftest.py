"""Test configuration. x64 must be on before any JAX array exists, so it is set here, first."""

import os

os.environ["JAX_ENABLE_X64"] = "1"

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
