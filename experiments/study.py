"""The model-selection protocol: train the grid, select on validation, test the selected model once.

`train_grid` runs configs unit by unit (a unit is one compiled program on the
jax backend, one config on torch), records per-epoch metrics, stops a
diverging config, checkpoints the unit in flight and stores each finished
config. `select` is an argmax of final validation accuracy; `evaluate_test`
opens the sealed test set once.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

import jaxmlp as jm
from experiments.settings import Config, Settings
from experiments.splits import SealedTestSet
from experiments.store import Store, Weights

METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


@dataclass
class ConfigResult:
    """One config's training: per-epoch metrics (up to divergence), final weights (None if it diverged)."""

    config: Config
    key: str
    history: dict[str, list[float]]
    diverged_at_epoch: int | None
    seconds: float
    weights: Weights | None

    @property
    def final(self) -> dict[str, float]:
        return {m: v[-1] if v else math.nan for m, v in self.history.items()}

    def record(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "key": self.key, "history": self.history,
                "diverged_at_epoch": self.diverged_at_epoch, "seconds": self.seconds}


class Progress:
    """What `train_grid` reports as it goes; the CLI passes tqdm bars, tests pass nothing."""

    def unit_started(self, labels: Sequence[str], first_epoch: int, epochs: int) -> None: ...

    def epoch_done(self, epoch: int, metrics: np.ndarray, diverged: Sequence[int | None]) -> None: ...

    def unit_done(self) -> None: ...


def _units(configs: Sequence[Config], unit_size: int | None) -> list[list[int]]:
    """Indices grouped into units: by Nesterov setting (it changes the program), then cut to ``unit_size``."""
    groups: dict[bool, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(c.nesterov, []).append(i)
    units = []
    for members in groups.values():
        size = unit_size or len(members)
        units += [members[j:j + size] for j in range(0, len(members), size)]
    return units


def train_grid(
    backend: Any,
    spec: jm.MLPSpec,
    settings: Settings,
    weights: Weights,
    fingerprint: str,
    store: Store,
    fresh: bool = False,
    checkpoint_every: float = 30.0,
    progress: Progress | None = None,
) -> list[ConfigResult]:
    """Train every config of ``settings.grid`` on ``spec`` from ``weights``; reuse stored results unless ``fresh``."""
    progress = progress or Progress()
    configs = settings.grid
    keys = [settings.run_key(c, spec, fingerprint, backend.engine) for c in configs]
    results: dict[int, ConfigResult] = {}
    for i, key in enumerate(keys):
        stored = None if fresh else store.load_result(key)
        if stored is not None:
            record, final = stored
            results[i] = ConfigResult(configs[i], key, record["history"], record["diverged_at_epoch"], record["seconds"], final)
    pending = [i for i in range(len(configs)) if i not in results]
    for unit in _units([configs[i] for i in pending], backend.unit_size):
        members = [pending[j] for j in unit]
        results.update(_train_unit(backend, spec, settings, weights, [configs[i] for i in members],
                                   [keys[i] for i in members], members, store, fresh, checkpoint_every, progress))
    return [results[i] for i in range(len(configs))]


def _train_unit(backend: Any, spec: jm.MLPSpec, settings: Settings, weights: Weights, configs: Sequence[Config],
                keys: Sequence[str], members: Sequence[int], store: Store, fresh: bool, checkpoint_every: float,
                progress: Progress) -> dict[int, ConfigResult]:
    """Train one unit from its checkpoint (or from scratch), then store each config; returns them by grid index."""
    unit_key = hashlib.sha256(" ".join(keys).encode()).hexdigest()[:20]
    checkpoint = None if fresh else store.load_checkpoint(unit_key)
    if checkpoint is not None:
        arrays, meta = checkpoint
        state = backend.restore(spec, configs, weights, arrays)
        histories, diverged, done, seconds = meta["histories"], meta["diverged"], meta["epoch"], meta["seconds"]
    else:
        state = backend.start(spec, configs, weights)
        histories = [{m: [] for m in METRICS} for _ in configs]
        diverged, done, seconds = [None] * len(configs), 0, 0.0
    progress.unit_started([c.label for c in configs], done + 1, settings.epochs)
    last_save = time.monotonic()
    for epoch in range(done + 1, settings.epochs + 1):
        if all(d is not None for d in diverged):
            break
        start = time.perf_counter()
        metrics = backend.run_epoch(state, epoch)
        seconds += time.perf_counter() - start
        for i, row in enumerate(metrics):
            if diverged[i] is not None:
                continue
            if not np.isfinite(row).all():
                diverged[i] = epoch
                continue
            for m, value in zip(METRICS, row):
                histories[i][m].append(float(value))
        progress.epoch_done(epoch, metrics, diverged)
        if epoch < settings.epochs and time.monotonic() - last_save >= checkpoint_every:
            meta = {"histories": histories, "diverged": diverged, "epoch": epoch, "seconds": seconds}
            store.save_checkpoint(unit_key, backend.snapshot(state), meta)
            last_save = time.monotonic()
    out = {}
    for i, (config, key, member) in enumerate(zip(configs, keys, members)):
        final = backend.final_weights(state, i) if diverged[i] is None else None
        result = ConfigResult(config, key, histories[i], diverged[i], seconds / len(configs), final)
        store.save_result(key, result.record(), final)
        out[member] = result
    store.drop_checkpoint(unit_key)
    progress.unit_done()
    return out


def select(results: Sequence[ConfigResult]) -> int:
    """Index of the best config: highest final validation accuracy; ties go to the lower final
    validation loss, then to the earlier config. Diverged configs never win."""
    candidates = [i for i, r in enumerate(results) if r.diverged_at_epoch is None]
    if not candidates:
        raise RuntimeError("every config diverged; lower the learning rate or the weight decay.")
    return min(candidates, key=lambda i: (-results[i].final["val_accuracy"], results[i].final["val_loss"], i))


def wilson_interval(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a proportion ``correct / n``."""
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def classification_report(y: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy with its 95% interval, per-class accuracy and the confusion matrix (rows: true class)."""
    k = len(classes)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y, pred), 1)
    correct = int(np.trace(confusion))
    low, high = wilson_interval(correct, len(y))
    return {
        "accuracy": correct / len(y), "ci95": [low, high], "n": int(len(y)),
        "per_class_accuracy": {c: float(confusion[i, i] / confusion[i].sum()) for i, c in enumerate(classes)},
        "confusion": confusion.tolist(),
    }


def evaluate_test(test: SealedTestSet, predictors: dict[str, Callable[[np.ndarray], np.ndarray]],
                  classes: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Open the test set (once) and score every predictor (``x -> predicted labels``) on it.

    Returns the reports and the predictions, by predictor name.
    """
    x, y = test.open()
    predictions = {name: np.asarray(fn(x)) for name, fn in predictors.items()}
    return {name: classification_report(y, pred, classes) for name, pred in predictions.items()}, predictions
