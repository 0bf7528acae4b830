"""The CIFAR-10 airplane-vs-bird model-selection study.

    python -m experiments.cifar2 --data-dir ../shared/data/cifar10-jpeg

Loads and analyses the data, normalises it with training statistics only,
splits train/validation/test, trains the 3072-512-128-32-2 ReLU MLP under the
grid (plus a majority and a linear baseline), selects the best config by
validation accuracy, tests it once, and writes results.json, results.csv,
figures/ and report.md under --out. Finished configs are stored (--store), so
rerunning the same command resumes; --fresh starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("JAX_ENABLE_X64", "1")  # float64 by default; must precede the first JAX array

import jax  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import jaxmlp as jm  # noqa: E402
from experiments import figures  # noqa: E402
from experiments.backends import make_backend  # noqa: E402
from experiments.data import DataError, load_raw  # noqa: E402
from experiments.parity import initial_weights  # noqa: E402
from experiments.report import report_markdown, results_csv  # noqa: E402
from experiments.settings import Settings, SettingsError, grid_from_file, grid_from_lists  # noqa: E402
from experiments.splits import analyse, make_splits  # noqa: E402
from experiments.store import Store, atomic_write  # noqa: E402
from experiments.study import ConfigResult, Progress, evaluate_test, select, train_grid  # noqa: E402


class TqdmProgress(Progress):
    """One bar per unit over its epochs, showing the best config's losses, inside a bar over configs."""

    def __init__(self, n_configs: int, name: str) -> None:
        self.outer = tqdm(total=n_configs, desc=f"{name} configs", unit="config", position=0)
        self.inner = None

    def unit_started(self, labels: Sequence[str], first_epoch: int, epochs: int) -> None:
        desc = labels[0] if len(labels) == 1 else f"{len(labels)} configs at once"
        self.inner = tqdm(total=epochs, initial=first_epoch - 1, desc=desc, unit="epoch", position=1, leave=False)
        self.n = len(labels)

    def epoch_done(self, epoch: int, metrics: np.ndarray, diverged: Sequence[int | None]) -> None:
        live = [row for row, d in zip(metrics, diverged) if d is None]
        if live:
            best = max(live, key=lambda r: r[3])
            self.inner.set_postfix(train_loss=f"{best[0]:.4f}", val_loss=f"{best[2]:.4f}", val_acc=f"{best[3]:.3f}",
                                   diverged=sum(d is not None for d in diverged))
        self.inner.update(1)

    def unit_done(self) -> None:
        self.inner.close()
        self.outer.update(self.n)

    def close(self) -> None:
        self.outer.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data-dir", default="data", help="where the CIFAR-10 files are (default: data)")
    data.add_argument("--download", action="store_true", help="download CIFAR-10 with torchvision if none is found")
    data.add_argument("--skip-md5", action="store_true", help="do not check official files against their md5")
    data.add_argument("--cache-dir", default=None, help="decoded-array cache (default: ~/.cache/jaxmlp)")
    data.add_argument("--classes", nargs="+", default=["airplane", "bird"], help="class names (default: airplane bird)")
    data.add_argument("--val-fraction", type=float, default=0.1, help="share of the training set held out (default 0.1)")
    grid = p.add_argument_group("grid (default: lr 0.01 with the seven (weight_decay, momentum) pairs of the study)")
    grid.add_argument("--grid-file", type=Path, help='JSON {"configs": [{"lr": .., "momentum": .., ...}], "epochs": ..}')
    grid.add_argument("--lr", type=float, nargs="+", help="learning rates")
    grid.add_argument("--momentum", type=float, nargs="+", help="momenta (Cartesian product with --weight-decay)")
    grid.add_argument("--weight-decay", type=float, nargs="+", help="weight decays")
    grid.add_argument("--dampening", type=float, default=0.0)
    grid.add_argument("--nesterov", action="store_true")
    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seed", type=int, help="seed of the split, the initial weights and shuffling (default 265)")
    train.add_argument("--shuffle", action="store_true", help="seeded reshuffle every epoch (same order on both backends)")
    train.add_argument("--dtype", help="float64 (default) or float32")
    train.add_argument("--hidden", type=int, nargs="+", help="hidden widths (default 512 128 32)")
    train.add_argument("--backend", default="jax", help="jax (default) or torch")
    train.add_argument("--parallel", default="configs", choices=["configs", "data"],
                       help="with several devices: shard the grid's configs (default) or each batch")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, help="output folder (default: runs/<timestamp>)")
    out.add_argument("--store", type=Path, default=Path("runs/.store"), help="finished configs, for resuming (default runs/.store)")
    out.add_argument("--fresh", action="store_true", help="ignore stored results and retrain everything")
    out.add_argument("--checkpoint-every", type=float, default=30.0, help="seconds between checkpoints of the unit in flight")
    out.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.grid_file is not None:
        grid, overrides = grid_from_file(args.grid_file)
    else:
        grid = grid_from_lists(args.lr, args.momentum, args.weight_decay, args.dampening, args.nesterov)
    for name in ("epochs", "batch_size", "seed", "dtype", "hidden"):
        if getattr(args, name) is not None:
            overrides[name] = tuple(args.hidden) if name == "hidden" else getattr(args, name)
    overrides.setdefault("classes", tuple(args.classes))
    overrides.setdefault("val_fraction", args.val_fraction)
    overrides["shuffle"] = args.shuffle or overrides.get("shuffle", False)
    return Settings(grid=grid, backend=args.backend, **overrides)


def prepare_output(out: Path) -> Path:
    """Create ``out`` and ``out/figures`` and prove they are writable, before any training."""
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise OSError(f"output folder {out} is not writable ({e.strerror}); choose another with --out.") from None
    return out


def _versions() -> dict[str, Any]:
    import jaxlib
    import optax
    import torch

    return {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "optax": optax.__version__, "numpy": np.__version__, "torch": torch.__version__,
            "platform": platform.platform(), "devices": [str(d) for d in jax.devices()]}


def _grid_section(results: Sequence[ConfigResult]) -> list[dict[str, Any]]:
    return [{"label": r.config.label, **r.record()} for r in results]


def run_study(settings: Settings, data_dir: Path, out: Path, store_dir: Path, *, download: bool = False,
              verify_md5: bool = True, cache_dir: Path | None = None, fresh: bool = False, quiet: bool = True,
              parallel: str = "configs", checkpoint_every: float = 30.0, command: str = "") -> dict[str, Any]:
    """The whole protocol; returns what it writes to ``out/results.json``."""
    t0 = time.perf_counter()
    started = datetime.now().isoformat(timespec="seconds")
    prepare_output(out)
    store = Store(store_dir)
    raw = load_raw(data_dir, settings.classes, download=download, verify_md5=verify_md5, cache_dir=cache_dir)
    splits = make_splits(raw, settings.val_fraction, settings.seed, np.dtype(settings.dtype))
    analysis = analyse(raw, splits)
    if not quiet:
        sizes = ", ".join(f"{k} {v['size']}" for k, v in analysis["splits"].items())
        tqdm.write(f"data: {raw.source}; {sizes}")
    figures.samples(raw.x_train[splits.train_index], splits.y_train, settings.classes, out / "figures" / "samples.png")

    backend = make_backend(splits, settings, parallel)
    spec, linear_spec = settings.spec(splits.x_train.shape[1]), settings.linear_spec(splits.x_train.shape[1])
    runs = {}
    t_train = time.perf_counter()
    for name, s in (("mlp", spec), ("linear", linear_spec)):
        progress = None if quiet else TqdmProgress(len(settings.grid), name)
        runs[name] = train_grid(backend, s, settings, initial_weights(s.sizes, settings.seed), splits.fingerprint, store,
                                fresh=fresh, checkpoint_every=checkpoint_every, progress=progress)
        if progress is not None:
            progress.close()
    training_seconds = time.perf_counter() - t_train

    best, best_linear = select(runs["mlp"]), select(runs["linear"])
    majority = int(np.bincount(splits.y_train).argmax())
    chosen, chosen_linear = runs["mlp"][best], runs["linear"][best_linear]

    def labels_of(s: jm.MLPSpec, weights):
        return lambda x: backend.predict(s, weights, x).argmax(axis=1)

    test, predictions = evaluate_test(splits.test, {
        "selected": labels_of(spec, chosen.weights),
        "linear": labels_of(linear_spec, chosen_linear.weights),
        "majority": lambda x: np.full(len(x), majority),
    }, settings.classes)
    figures.curves(runs["mlp"], best, out / "figures" / "loss_curves.png", "loss")
    figures.curves(runs["mlp"], best, out / "figures" / "accuracy_curves.png", "accuracy")
    figures.confusion(test["selected"]["confusion"], settings.classes, out / "figures" / "confusion.png")
    figures.misclassified(splits.raw_test, raw.y_test, predictions["selected"], settings.classes, out / "figures" / "misclassified.png")

    results = {
        "settings": settings.as_dict(),
        "run": {"started": started, "command": command, "training_seconds": training_seconds,
                "total_seconds": time.perf_counter() - t0, "versions": _versions(), "engine": backend.engine,
                "parallel": parallel},
        "data": analysis,
        "model": {"sizes": list(spec.sizes), "activations": list(spec.activations), "loss": "cross_entropy",
                  "initial_weights": f"torch.manual_seed({settings.seed}); MyMLP({list(spec.sizes)})"},
        "grid": _grid_section(runs["mlp"]),
        "selection": {"index": best, "label": chosen.config.label, "val_accuracy": chosen.final["val_accuracy"],
                      "val_loss": chosen.final["val_loss"],
                      "rule": "argmax of final validation accuracy; ties: lower final validation loss, then grid order"},
        "baselines": {
            "majority": {"class": settings.classes[majority],
                         "val_accuracy": float(np.mean(splits.y_val == majority))},
            "linear": {"label": chosen_linear.config.label, "val_accuracy": chosen_linear.final["val_accuracy"],
                       "grid": _grid_section(runs["linear"])},
        },
        "test": test,
    }
    results["run"]["total_seconds"] = time.perf_counter() - t0
    atomic_write(out / "results.json", json.dumps(results, indent=1).encode())
    atomic_write(out / "results.csv", results_csv(results).encode())
    atomic_write(out / "report.md", report_markdown(results).encode())
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
        out = args.out or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
        command = "python -m experiments.cifar2 " + shlex.join(sys.argv[1:] if argv is None else list(argv))
        results = run_study(settings, Path(args.data_dir), out, args.store, download=args.download,
                            verify_md5=not args.skip_md5, cache_dir=args.cache_dir, fresh=args.fresh, quiet=args.quiet,
                            parallel=args.parallel, checkpoint_every=args.checkpoint_every, command=command)
    except (DataError, SettingsError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    test = results["test"]["selected"]
    print(f"selected {results['selection']['label']} (val accuracy {results['selection']['val_accuracy']:.4f}); "
          f"test accuracy {test['accuracy']:.4f} [{test['ci95'][0]:.4f}, {test['ci95'][1]:.4f}]; "
          f"training {results['run']['training_seconds']:.1f} s; report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
