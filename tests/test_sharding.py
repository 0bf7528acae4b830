"""Sharded runs (4 simulated CPU devices, in a subprocess) give the single-device results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("sharding_worker.py")


def run_worker(out: Path, parallel: str, devices: int) -> dict[str, np.ndarray]:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(WORKER), str(out), parallel], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    return run_worker(tmp_path_factory.mktemp("one") / "one.npz", "configs", 1)


@pytest.mark.parametrize("parallel", ["configs", "data"])
def test_four_devices_match_one(single_device, tmp_path, parallel):
    sharded = run_worker(tmp_path / f"{parallel}.npz", parallel, 4)
    assert int(sharded["devices"]) == 4 and int(single_device["devices"]) == 1
    assert set(sharded) == set(single_device)
    for key in single_device:
        if key != "devices":
            # Sharding configs changes no arithmetic; data parallelism sums the batch's gradient in another order.
            np.testing.assert_allclose(sharded[key], single_device[key], rtol=1e-10, atol=1e-13, err_msg=key)
