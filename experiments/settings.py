"""The study's settings: the hyperparameter grid and everything else a run depends on, validated up front."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import jaxmlp as jm

STUDY_PAIRS = ((0.0, 0.0), (0.01, 0.0), (0.9, 0.0), (0.0, 0.01), (0.0, 0.9), (0.01, 0.9), (0.9, 0.01))
"""The default (weight_decay, momentum) pairs, all at lr 0.01."""

DTYPES = ("float32", "float64")
BACKENDS = ("jax", "torch")


class SettingsError(ValueError):
    """An invalid setting; the message names the field."""


@dataclass(frozen=True)
class Config:
    """One point of the grid: the arguments of ``torch.optim.SGD`` / `jaxmlp.SGD`."""

    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        for name in ("lr", "momentum", "weight_decay", "dampening"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingsError(f"grid field '{name}' must be a number, got {value!r}.")
            object.__setattr__(self, name, float(value))
        try:
            jm.SGD(**self.sgd_kwargs())
        except (ValueError, TypeError) as e:
            raise SettingsError(f"invalid grid config {self.label}: {e}") from None

    def sgd_kwargs(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        text = f"lr={self.lr:g} wd={self.weight_decay:g} m={self.momentum:g}"
        if self.dampening:
            text += f" damp={self.dampening:g}"
        return text + (" nesterov" if self.nesterov else "")


def default_grid(lr: float = 0.01) -> tuple[Config, ...]:
    return tuple(Config(lr=lr, weight_decay=wd, momentum=m) for wd, m in STUDY_PAIRS)


@dataclass(frozen=True)
class Settings:
    """Everything a training run depends on. `run_key` hashes the parts that change its numbers."""

    grid: tuple[Config, ...] = field(default_factory=default_grid)
    epochs: int = 50
    batch_size: int = 256
    classes: tuple[str, ...] = ("airplane", "bird")
    seed: int = 265
    val_fraction: float = 0.1
    shuffle: bool = False
    dtype: str = "float64"
    backend: str = "jax"
    hidden: tuple[int, ...] = (512, 128, 32)

    def __post_init__(self) -> None:
        if not self.grid:
            raise SettingsError("the grid is empty: give at least one config.")
        if len(set(self.grid)) != len(self.grid):
            raise SettingsError("the grid lists the same config twice; remove the duplicate.")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"'{name}' must be a positive integer, got {value!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SettingsError(f"'seed' must be a non-negative integer, got {self.seed!r}.")
        if self.dtype not in DTYPES:
            raise SettingsError(f"'dtype' must be one of {DTYPES}, got {self.dtype!r}.")
        if self.backend not in BACKENDS:
            raise SettingsError(f"'backend' must be one of {BACKENDS}, got {self.backend!r}.")
        if not 0 < self.val_fraction < 1:
            raise SettingsError(f"'val_fraction' must lie strictly between 0 and 1, got {self.val_fraction!r}.")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise SettingsError(f"'classes' must be at least two distinct names, got {list(self.classes)}.")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.hidden):
            raise SettingsError(f"'hidden' widths must be positive integers, got {list(self.hidden)}.")

    def spec(self, n_in: int = 3072) -> jm.MLPSpec:
        """The study's MLP: ReLU hidden layers, linear output over the classes."""
        return jm.MLPSpec.mlp((n_in, *self.hidden, len(self.classes)))

    def linear_spec(self, n_in: int = 3072) -> jm.MLPSpec:
        """The linear baseline ``n_in -> n_classes``."""
        return jm.MLPSpec((n_in, len(self.classes)), ("identity",))

    def run_key(self, config: Config, spec: jm.MLPSpec, fingerprint: str, engine: str) -> str:
        """A digest of everything that determines one config's training: same key, same numbers."""
        payload = {
            "config": asdict(config), "spec": [spec.sizes, spec.activations], "data": fingerprint,
            "engine": engine, "epochs": self.epochs, "batch_size": self.batch_size, "seed": self.seed,
            "val_fraction": self.val_fraction, "shuffle": self.shuffle, "dtype": self.dtype, "classes": self.classes,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grid"] = [asdict(c) for c in self.grid]
        return d


def grid_from_lists(
    lrs: Sequence[float] | None, momenta: Sequence[float] | None, weight_decays: Sequence[float] | None,
    dampening: float = 0.0, nesterov: bool = False,
) -> tuple[Config, ...]:
    """The default pairs at each lr, or, when momenta or weight decays are given, their Cartesian product."""
    lrs = list(lrs) if lrs else [0.01]
    if momenta is None and weight_decays is None:
        pairs = STUDY_PAIRS
    else:
        pairs = tuple(itertools.product(weight_decays or [0.0], momenta or [0.0]))
    return tuple(
        Config(lr=lr, weight_decay=wd, momentum=m, dampening=dampening, nesterov=nesterov)
        for lr in lrs for wd, m in pairs
    )


def grid_from_file(path: Path) -> tuple[tuple[Config, ...], dict[str, Any]]:
    """``{"configs": [{"lr": .., "momentum": .., ...}, ...], "epochs": .., ...}`` from JSON.

    Returns the grid and the other settings the file overrides.
    """
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SettingsError(f"cannot read grid file {path}: {e}") from None
    if not isinstance(content, dict) or not isinstance(content.get("configs"), list):
        raise SettingsError(f"grid file {path} must be a JSON object with a list 'configs'.")
    known = {"lr", "momentum", "weight_decay", "dampening", "nesterov"}
    configs = []
    for i, entry in enumerate(content.pop("configs")):
        if not isinstance(entry, dict) or "lr" not in entry or set(entry) - known:
            raise SettingsError(
                f"grid file {path}, configs[{i}] = {entry!r}: each config needs 'lr' and may set only {sorted(known)}."
            )
        try:
            configs.append(Config(**entry))
        except SettingsError as e:
            raise SettingsError(f"grid file {path}, configs[{i}]: {e}") from None
    allowed = {"epochs", "batch_size", "classes", "seed", "val_fraction", "shuffle", "dtype", "hidden"}
    if set(content) - allowed:
        raise SettingsError(f"grid file {path} has unknown fields {sorted(set(content) - allowed)}; allowed: {sorted(allowed)}.")
    for name in ("classes", "hidden"):
        if name in content:
            content[name] = tuple(content[name])
    return tuple(configs), content
