"""Train/validation/test splits, normalisation from training statistics only, and the data analysis.

The official training set is split 90/10 into train and validation by a seeded
permutation; the official test set is the test set, sealed: it can be opened
exactly once, after model selection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from experiments.data import DataError, RawData


class SealedTestSet:
    """The test split, handed out once: a second `open` raises, so selection can never peek at it."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self._x, self._y = x, y
        self.opened = 0

    def __len__(self) -> int:
        return len(self._y)

    def open(self) -> tuple[np.ndarray, np.ndarray]:
        if self.opened:
            raise RuntimeError("the test set was already used once; model selection must rely on validation only.")
        self.opened += 1
        return self._x, self._y


@dataclass
class Splits:
    """Normalised ``x_*: (n, 3072)`` in the study's dtype, ``y_*: int64 (n,)``; ``mean``/``std`` per channel
    (from the training split, in [0, 1] pixel units); ``train_index``/``val_index`` into the official training set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    test: SealedTestSet
    mean: np.ndarray
    std: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    classes: tuple[str, ...]
    fingerprint: str
    raw_test: np.ndarray = field(repr=False, default=None)  # uint8 test images, for the misclassified figure


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_index, val_index)`` from ``default_rng(seed).permutation(n)``: the first ``round(f n)`` are validation."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n))
    return perm[n_val:], perm[:n_val]


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of ``x: uint8 (n, 3072)`` in [0, 1] units, over every pixel of every image."""
    planes = x.reshape(x.shape[0], 3, -1).astype(np.float64) / 255.0
    return planes.mean(axis=(0, 2)), planes.std(axis=(0, 2))


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``(x / 255 - mean_c) / std_c`` channel by channel, as ``Normalize(mean, std)`` after ``ToTensor()``."""
    planes = x.reshape(x.shape[0], 3, -1).astype(np.float64) / 255.0
    return ((planes - mean[:, None]) / std[:, None]).reshape(x.shape[0], -1).astype(dtype)


def make_splits(raw: RawData, val_fraction: float = 0.1, seed: int = 265, dtype: np.dtype = np.float64) -> Splits:
    """Split, then normalise every split with the training split's statistics."""
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}.")
    train_index, val_index = split_indices(len(raw.y_train), val_fraction, seed)
    for name, labels in (("train", raw.y_train[train_index]), ("validation", raw.y_train[val_index]), ("test", raw.y_test)):
        counts = np.bincount(labels, minlength=len(raw.classes))
        if counts.min() == 0:
            empty = [c for c, k in zip(raw.classes, counts) if k == 0]
            raise DataError(
                f"the {name} split has no images of {empty} ({len(labels)} images in all); "
                "add data for those classes or change --val-fraction."
            )
    mean, std = channel_stats(raw.x_train[train_index])
    if (std == 0).any():
        raise DataError("a colour channel of the training split is constant (std 0); the data cannot be normalised.")
    x_train = normalise(raw.x_train[train_index], mean, std, dtype)
    x_val = normalise(raw.x_train[val_index], mean, std, dtype)
    x_test = normalise(raw.x_test, mean, std, dtype)
    return Splits(
        x_train, raw.y_train[train_index], x_val, raw.y_train[val_index], SealedTestSet(x_test, raw.y_test),
        mean, std, train_index, val_index, raw.classes, raw.fingerprint, raw.x_test,
    )


def analyse(raw: RawData, splits: Splits) -> dict:
    """Class balance per split, pixel range, per-channel statistics, and checks for odd values and duplicates."""
    sets = {
        "train": (raw.x_train[splits.train_index], splits.y_train),
        "validation": (raw.x_train[splits.val_index], splits.y_val),
        "test": (raw.x_test, raw.y_test),
    }
    report: dict = {"classes": list(raw.classes), "source": raw.source, "fingerprint": raw.fingerprint, "splits": {}}
    for name, (x, y) in sets.items():
        mean, std = channel_stats(x)
        report["splits"][name] = {
            "size": int(len(y)),
            "class_counts": {c: int(k) for c, k in zip(raw.classes, np.bincount(y, minlength=len(raw.classes)))},
            "pixel_min": int(x.min()),
            "pixel_max": int(x.max()),
            "channel_mean": mean.round(4).tolist(),
            "channel_std": std.round(4).tolist(),
            "saturated_fraction": float(((x == 0) | (x == 255)).mean()),
            "constant_images": int((x.min(axis=1) == x.max(axis=1)).sum()),
        }
    report["per_class_channel_mean_train"] = {
        c: channel_stats(sets["train"][0][sets["train"][1] == k])[0].round(4).tolist() for k, c in enumerate(raw.classes)
    }
    normalised = (splits.x_train, splits.x_val)
    report["normalisation"] = {
        "mean": splits.mean.round(6).tolist(),
        "std": splits.std.round(6).tolist(),
        "computed_on": "train split only",
        "non_finite_values": int(sum((~np.isfinite(x)).sum() for x in normalised)),
        "max_abs_normalised": float(max(np.abs(x).max() for x in normalised)),
    }
    train_hashes = {hashlib_row(r) for r in sets["train"][0]}
    report["duplicates"] = {
        "validation_in_train": int(sum(hashlib_row(r) in train_hashes for r in sets["validation"][0])),
        "test_in_train": int(sum(hashlib_row(r) in train_hashes for r in sets["test"][0])),
    }
    return report


def hashlib_row(row: np.ndarray) -> bytes:
    """A short digest of one image, for exact-duplicate checks across splits."""
    return hashlib.blake2b(row.tobytes(), digest_size=12).digest()
