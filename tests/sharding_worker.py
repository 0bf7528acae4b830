"""Run a small grid through JaxBackend and save every history and final weight (used by test_sharding.py).

    python tests/sharding_worker.py OUT.npz {configs,data}

Run it with XLA_FLAGS=--xla_force_host_platform_device_count=N to shard over N simulated devices.
"""

import os
import sys

os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from experiments.backends import JaxBackend  # noqa: E402
from experiments.parity import initial_weights  # noqa: E402
from experiments.settings import Config, Settings  # noqa: E402
from experiments.splits import SealedTestSet, Splits  # noqa: E402
from experiments.store import Store  # noqa: E402
from experiments.study import train_grid  # noqa: E402


def tiny_splits(seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(140, 3072))
    y = (x[:, :10].sum(axis=1) > 0).astype(np.int64)
    index = np.arange(100)
    return Splits(x[:100], y[:100], x[100:], y[100:], SealedTestSet(x[100:], y[100:]), np.zeros(3), np.ones(3),
                  index, index, ("a", "b"), "synthetic")


def main(out: str, parallel: str) -> None:
    settings = Settings(grid=(Config(lr=0.05), Config(lr=0.05, momentum=0.9), Config(lr=0.1, weight_decay=0.01)),
                        hidden=(16, 8), epochs=3, batch_size=32)
    splits = tiny_splits()
    spec = settings.spec()
    backend = JaxBackend(splits, settings, parallel)
    store_dir = os.path.join(os.path.dirname(out), f"store-{parallel}-{jax.device_count()}")
    results = train_grid(backend, spec, settings, initial_weights(spec.sizes, settings.seed), "synthetic", Store(store_dir))
    arrays = {"devices": np.array(jax.device_count())}
    for i, r in enumerate(results):
        for metric, values in r.history.items():
            arrays[f"{i}/{metric}"] = np.array(values)
        for l, (W, b) in enumerate(r.weights):
            arrays[f"{i}/W{l}"], arrays[f"{i}/b{l}"] = W, b
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
