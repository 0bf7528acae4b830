"""Small CIFAR-10 look-alikes written by the tests: official pickled batches and image-folder trees."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def official_batches(folder: Path, per_batch: int = 20, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """``data_batch_1..5`` and ``test_batch`` as the official release writes them (protocol-2 pickles of a
    dict with bytes keys, ``data`` uint8 (n, 3072) channel-major, ``labels`` a list of ints 0..9)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = (data, labels)
    return written


def archive_of(folder: Path, archive: Path) -> Path:
    """``folder`` packed as ``cifar-10-batches-py/`` inside a .tar.gz, like the official archive."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive


def class_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 32x32 RGB uint8 image whose colour depends on the class, so a small model can learn it."""
    base = np.array([[200, 60, 60], [60, 60, 200], [60, 200, 60]][label % 3], dtype=np.int64)
    noise = rng.integers(-50, 51, (32, 32, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def image_folder(root: Path, classes=("airplane", "bird"), n_train: int = 60, n_test: int = 20, seed: int = 0,
                 suffix: str = ".png") -> dict[str, dict[str, list[np.ndarray]]]:
    """``root/{train,test}/<class>/NNNN.png`` (lossless), returning the HWC images written, by split and class."""
    rng = np.random.default_rng(seed)
    written: dict[str, dict[str, list[np.ndarray]]] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        written[split] = {}
        for label, cls in enumerate(classes):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            images = [class_image(label, rng) for _ in range(n)]
            for i, img in enumerate(images):
                Image.fromarray(img).save(folder / f"{i:04d}{suffix}")
            written[split][cls] = images
    return written
