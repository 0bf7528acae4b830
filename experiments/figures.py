"""The study's figures, drawn with matplotlib (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.study import ConfigResult  # noqa: E402


def _image(row: np.ndarray) -> np.ndarray:
    """A channel-major ``uint8 (3072,)`` row as an ``(32, 32, 3)`` picture."""
    return row.reshape(3, 32, 32).transpose(1, 2, 0)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _image_rows(rows: Sequence[tuple[str, np.ndarray]], path: Path, per_row: int) -> Path:
    """One titled row of up to ``per_row`` pictures per ``(title, uint8 (k, 3072) images)`` pair."""
    fig = plt.figure(figsize=(per_row * 0.9, len(rows) * 1.25))
    for subfig, (title, images) in zip(np.atleast_1d(fig.subfigures(len(rows), 1)), rows):
        subfig.suptitle(title, fontsize=9, x=0.01, ha="left")
        for ax, j in zip(subfig.subplots(1, per_row), range(per_row)):
            ax.axis("off")
            if j < len(images):
                ax.imshow(_image(images[j]))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def samples(x: np.ndarray, y: np.ndarray, classes: Sequence[str], path: Path, per_class: int = 10) -> Path:
    """The first ``per_class`` training images of each class, one row per class."""
    return _image_rows([(cls, x[y == k][:per_class]) for k, cls in enumerate(classes)], path, per_class)


def curves(results: Sequence[ConfigResult], selected: int, path: Path, metric: str) -> Path:
    """Train and validation ``metric`` ("loss" or "accuracy") per epoch, one panel per config."""
    ncols = min(4, len(results))
    nrows = math.ceil(len(results) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False, sharey=metric == "accuracy")
    for ax, (i, r) in zip(axes.flat, enumerate(results)):
        epochs = np.arange(1, len(r.history[f"train_{metric}"]) + 1)
        ax.plot(epochs, r.history[f"train_{metric}"], label="train")
        ax.plot(epochs, r.history[f"val_{metric}"], label="validation")
        title = r.config.label + ("  [selected]" if i == selected else "")
        if r.diverged_at_epoch is not None:
            title += f"  [diverged @{r.diverged_at_epoch}]"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    for ax in axes.flat[len(results):]:
        ax.axis("off")
    return _save(fig, path)


def confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path) -> Path:
    """The test confusion matrix (rows: true class, columns: predicted)."""
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(classes), 1.2 + 1.2 * len(classes)))
    ax.imshow(m, cmap="Blues")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return _save(fig, path)


def misclassified(x: np.ndarray, y: np.ndarray, pred: np.ndarray, classes: Sequence[str], path: Path, n: int = 12) -> Path:
    """Up to ``n`` misclassified test images for every (true, predicted) pair of distinct classes."""
    rows = []
    for t in range(len(classes)):
        for p in range(len(classes)):
            if t != p:
                wrong = x[(y == t) & (pred == p)]
                rows.append((f"true {classes[t]}, predicted {classes[p]} ({len(wrong)} in all)", wrong[:n]))
    return _image_rows(rows, path, n)
