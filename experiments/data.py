"""CIFAR-10 for the study: find, verify, decode, cache, split and normalise, the same arrays for both backends.

Accepted sources under ``data_dir`` (looked for in this order):

1. the official python release, ``cifar-10-batches-py/`` (``data_dir`` itself, or a
   folder inside it), each batch checked against torchvision's published md5;
2. the archive ``cifar-10-python.tar.gz`` (md5-checked, then extracted safely);
3. an image-folder tree ``train/<class>/*.{png,jpg,jpeg}`` and ``test/<class>/*``;
4. with ``download=True``: ``torchvision.datasets.CIFAR10(data_dir, download=True)``.

Images come out as ``uint8 (n, 3072)`` flattened channel-major (R plane, G
plane, B plane), exactly ``torch.flatten(ToTensor()(img))`` times 255, with
labels ``0..len(classes)-1`` in the order the classes were asked for.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BATCHES_DIR = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SHAPE = (32, 32, 3)
CACHE_VERSION = 1


class DataError(RuntimeError):
    """The data cannot be found, read or trusted; the message says where and what to do."""


@dataclass(frozen=True)
class RawData:
    """Decoded images of the requested classes: ``x_*: uint8 (n, 3072)`` channel-major, ``y_*: int64 (n,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str
    fingerprint: str


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _official_md5s() -> dict[str, str]:
    from torchvision.datasets import CIFAR10

    return dict(CIFAR10.train_list + CIFAR10.test_list)


# ------------------------------------------------------------------ official python batches


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what the official batches contain: a dict of bytes, lists of ints and one uint8 ndarray."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which no official CIFAR-10 batch contains")
        return super().find_class(module, name)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One official batch file: ``data uint8 (n, 3072)`` and ``labels int64 (n,)``, never running pickled code."""
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise DataError(
            f"{path} is not a valid CIFAR-10 python batch ({e}). Delete it and fetch the official "
            f"'{ARCHIVE}' again (e.g. with --download)."
        ) from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (data.shape[0],):
        raise DataError(
            f"{path} holds data {data.dtype}{data.shape} and {labels.shape[0]} labels; an official batch holds "
            "uint8 (n, 3072) and n labels. Delete it and fetch the data again."
        )
    return data, labels


def _find_batches_dir(data_dir: Path) -> Path | None:
    for candidate in (data_dir, data_dir / BATCHES_DIR):
        if (candidate / "data_batch_1").is_file() and (candidate / "test_batch").is_file():
            return candidate
    return None


def load_official(batches_dir: Path, classes: Sequence[str], verify_md5: bool = True) -> RawData:
    """The official release in ``batches_dir`` (``data_batch_1..5``, ``test_batch``), filtered to ``classes``."""
    ids = [CIFAR10_CLASSES.index(c) for c in classes]
    md5s = _official_md5s()
    parts = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        path = batches_dir / name
        if not path.is_file():
            raise DataError(f"{path} is missing; the official release has data_batch_1..5 and test_batch in {batches_dir}.")
        if verify_md5 and _md5(path) != md5s[name]:
            raise DataError(
                f"{path} fails its md5 check (expected {md5s[name]}): the file is corrupt or not the official one. "
                "Delete it and fetch the release again (--download), or pass --skip-md5 for files you made yourself."
            )
        parts[name] = read_batch(path)

    def select(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        data = np.concatenate([parts[n][0] for n in names])
        labels = np.concatenate([parts[n][1] for n in names])
        keep = np.isin(labels, ids)
        relabel = np.zeros(len(CIFAR10_CLASSES), np.int64)
        relabel[ids] = np.arange(len(ids))
        return data[keep], relabel[labels[keep]]

    x_train, y_train = select([f"data_batch_{i}" for i in range(1, 6)])
    x_test, y_test = select(["test_batch"])
    return RawData(x_train, y_train, x_test, y_test, tuple(classes), f"official batches in {batches_dir}", "")


def extract_archive(archive: Path, target: Path, verify_md5: bool = True) -> Path:
    """Check the archive's md5, extract it into ``target`` refusing any member that would land outside it."""
    from torchvision.datasets import CIFAR10

    if verify_md5 and _md5(archive) != CIFAR10.tgz_md5:
        raise DataError(
            f"{archive} fails its md5 check (expected {CIFAR10.tgz_md5}); it is incomplete or not the official "
            "archive. Delete it and download it again."
        )
    target = target.resolve()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                dest = (target / member.name).resolve()
                if not (member.isfile() or member.isdir()) or not dest.is_relative_to(target):
                    raise DataError(
                        f"{archive} contains '{member.name}', which is not a plain file inside the target folder; "
                        "refusing to extract a tampered archive."
                    )
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive} cannot be read as a .tar.gz archive ({e}); delete it and download it again.") from None
    return target / BATCHES_DIR


# ------------------------------------------------------------------ image folders


def _class_files(root: Path, split: str, cls: str) -> list[Path]:
    folder = root / split / cls
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def _decode_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path} cannot be decoded as an image ({e}); remove or replace the file.") from None
    if array.shape != IMAGE_SHAPE:
        raise DataError(f"{path} is {array.shape[1]}x{array.shape[0]} pixels; CIFAR-10 images are 32x32 RGB.")
    return array.transpose(2, 0, 1).reshape(-1)  # (H, W, C) -> channel-major, as ToTensor() then flatten


def load_image_folder(root: Path, classes: Sequence[str]) -> RawData:
    """``root/{train,test}/<class>/*`` decoded with Pillow, classes relabelled in the order given."""
    available = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    unknown = [c for c in classes if c not in available]
    if unknown:
        raise DataError(f"classes {unknown} not found in {root / 'train'}; it has {available}.")
    arrays = {}
    for split in ("train", "test"):
        per_class = [_class_files(root, split, cls) for cls in classes]
        for cls, paths in zip(classes, per_class):
            if not paths:
                raise DataError(f"{root / split / cls} holds no images ({', '.join(IMAGE_SUFFIXES)}); the {split} split is empty for '{cls}'.")
        files = [(label, path) for label, paths in enumerate(per_class) for path in paths]
        arrays[split] = (
            np.stack([_decode_image(p) for _, p in files]),
            np.array([label for label, _ in files], np.int64),
        )
    return RawData(*arrays["train"], *arrays["test"], tuple(classes), f"image folders in {root}", "")


def _is_image_folder(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


# ------------------------------------------------------------------ finding, caching


def _fingerprint(files: Sequence[Path], classes: Sequence[str], layout: str) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION} {layout} {list(classes)}".encode())
    for f in files:
        st = f.stat()
        digest.update(f"{f.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _source_files(kind: str, path: Path, classes: Sequence[str]) -> list[Path]:
    if kind == "official":
        return [path / f"data_batch_{i}" for i in range(1, 6)] + [path / "test_batch"]
    return [f for split in ("train", "test") for c in classes for f in _class_files(path, split, c)]


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jaxmlp"


def _not_found_message(data_dir: Path) -> str:
    return (
        f"No CIFAR-10 data found under {data_dir}. Looked for:\n"
        f"  - {data_dir}/{BATCHES_DIR}/ (or {data_dir} itself) with data_batch_1..5 and test_batch (official python release)\n"
        f"  - {data_dir}/{ARCHIVE} (official archive, md5-checked and extracted)\n"
        f"  - {data_dir}/train/<class>/*.png|jpg and {data_dir}/test/<class>/* (image folders)\n"
        "Get the data with --download (torchvision fetches the official archive, about 170 MB), or download\n"
        f"https://www.cs.toronto.edu/~kriz/{ARCHIVE} into {data_dir}."
    )


def _locate(data_dir: Path, download: bool, verify_md5: bool, cache_dir: Path) -> tuple[str, Path]:
    """``("official", batches_dir)`` or ``("folder", root)``; extracts or downloads when that is the only way."""
    if not data_dir.exists() and not download:
        raise DataError(_not_found_message(data_dir))
    if (found := _find_batches_dir(data_dir)) is not None:
        return "official", found
    if (data_dir / ARCHIVE).is_file():
        target = cache_dir / f"extracted-{_fingerprint([data_dir / ARCHIVE], [], 'archive')}"
        batches = _find_batches_dir(target) or extract_archive(data_dir / ARCHIVE, target, verify_md5)
        return "official", batches
    if _is_image_folder(data_dir):
        return "folder", data_dir
    if download:
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(str(data_dir), train=True, download=True)
        except Exception as e:  # network errors come in many types; all end the same way
            raise DataError(f"downloading CIFAR-10 into {data_dir} failed ({e}).\n" + _not_found_message(data_dir)) from None
        return "official", data_dir / BATCHES_DIR
    raise DataError(_not_found_message(data_dir))


def load_raw(
    data_dir: str | Path,
    classes: Sequence[str] = ("airplane", "bird"),
    download: bool = False,
    verify_md5: bool = True,
    cache_dir: str | Path | None = None,
) -> RawData:
    """Find and decode the requested classes, or read them from the cache written by an earlier call.

    The cache (``.npz``) is keyed by a fingerprint of the source files (names,
    sizes, modification times) and the classes, so a changed file is decoded again.
    """
    data_dir = Path(data_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise DataError(f"classes must be at least two distinct names, got {list(classes)}.")
    kind, path = _locate(data_dir, download, verify_md5, cache_dir)
    if kind == "official":
        unknown = [c for c in classes if c not in CIFAR10_CLASSES]
        if unknown:
            raise DataError(f"unknown CIFAR-10 classes {unknown}; choose from {list(CIFAR10_CLASSES)}.")
    files = _source_files(kind, path, classes)
    fingerprint = _fingerprint(files, classes, f"{kind}{'' if verify_md5 else '-unverified'}")
    cached = cache_dir / f"cifar-{fingerprint}.npz"
    if cached.is_file():
        try:
            with np.load(cached) as z:
                return RawData(z["x_train"], z["y_train"], z["x_test"], z["y_test"], tuple(classes), str(z["source"]), fingerprint)
        except (OSError, ValueError, KeyError, EOFError):
            cached.unlink(missing_ok=True)  # a broken cache is rebuilt, never trusted
    raw = load_official(path, classes, verify_md5) if kind == "official" else load_image_folder(path, classes)
    raw = RawData(raw.x_train, raw.y_train, raw.x_test, raw.y_test, raw.classes, raw.source, fingerprint)
    _write_cache(cached, raw)
    return raw


def _write_cache(path: Path, raw: RawData) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, x_train=raw.x_train, y_train=raw.y_train, x_test=raw.x_test, y_test=raw.y_test, source=raw.source)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)
    except OSError:
        pass  # a cache is an optimisation: an unwritable cache folder only costs the next run a decode
