"""The study: selection, one test evaluation, divergence, resume after kill -9, backend parity, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from datagen import image_folder

from experiments import cifar2
from experiments.backends import JaxBackend, make_backend
from experiments.data import load_raw
from experiments.parity import initial_weights
from experiments.settings import Config, Settings, SettingsError, grid_from_lists
from experiments.splits import SealedTestSet, make_splits
from experiments.store import Store
from experiments.study import ConfigResult, select, train_grid, wilson_interval

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "cifar10-jpeg"
TINY = dict(hidden=(16,), epochs=3, batch_size=32)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    image_folder(root, n_train=60, n_test=20)
    return root


def _splits(tiny_data, settings, tmp_path):
    raw = load_raw(tiny_data, settings.classes, cache_dir=tmp_path / "cache")
    return make_splits(raw, settings.val_fraction, settings.seed, np.dtype(settings.dtype))


def _result(i, val_acc, val_loss, diverged=None):
    history = {"train_loss": [1.0], "train_accuracy": [0.5], "val_loss": [val_loss], "val_accuracy": [val_acc]}
    return ConfigResult(Config(lr=0.01 * (i + 1)), str(i), history, diverged, 0.0, None)


def test_select_is_argmax_with_tie_rules():
    results = [_result(0, 0.80, 0.5), _result(1, 0.90, 0.4), _result(2, 0.90, 0.3), _result(3, 0.95, 0.1, diverged=4)]
    assert select(results) == 2  # 3 diverged; 1 and 2 tie on accuracy, 2 has the lower loss
    results[2] = _result(2, 0.90, 0.4)
    assert select(results) == 1  # full tie: grid order
    with pytest.raises(RuntimeError, match="every config diverged"):
        select([_result(0, 0.9, 0.1, diverged=1)])


def test_wilson_interval():
    low, high = wilson_interval(80, 100)
    assert low < 0.8 < high
    np.testing.assert_allclose((low, high), (0.7112, 0.8666), atol=1e-4)


def test_study_selects_by_validation_and_opens_the_test_set_once(tiny_data, tmp_path, monkeypatch):
    opened = []
    original = SealedTestSet.open
    monkeypatch.setattr(SealedTestSet, "open", lambda self: opened.append(1) or original(self))
    settings = Settings(grid=grid_from_lists([0.01, 0.1], [0.0, 0.9], None), **TINY)
    results = cifar2.run_study(settings, tiny_data, tmp_path / "out", tmp_path / "store", cache_dir=tmp_path / "c")
    assert len(opened) == 1
    finals = [(r["history"]["val_accuracy"][-1], -r["history"]["val_loss"][-1]) for r in results["grid"]]
    best = max(range(len(finals)), key=lambda i: (finals[i], -i))
    assert results["selection"]["index"] == best
    for name in ("results.json", "results.csv", "report.md", "figures/samples.png", "figures/loss_curves.png",
                 "figures/accuracy_curves.png", "figures/confusion.png", "figures/misclassified.png"):
        assert (tmp_path / "out" / name).is_file(), name
    test = results["test"]["selected"]
    assert sum(map(sum, test["confusion"])) == 40 and test["ci95"][0] <= test["accuracy"] <= test["ci95"][1]
    report = (tmp_path / "out" / "report.md").read_text()
    assert results["selection"]["label"] in report and "## Commentary" in report
    assert len((tmp_path / "out" / "results.csv").read_text().splitlines()) == 1 + 4


def test_diverging_config_is_marked_excluded_and_the_sweep_goes_on(tiny_data, tmp_path):
    settings = Settings(grid=(Config(lr=0.05), Config(lr=1e30, weight_decay=1.0), Config(lr=0.01, momentum=0.9)), **TINY)
    splits = _splits(tiny_data, settings, tmp_path)
    spec = settings.spec()
    for backend in (make_backend(splits, settings), make_backend(splits, Settings(**{**settings.__dict__, "backend": "torch"}))):
        results = train_grid(backend, spec, settings, initial_weights(spec.sizes, settings.seed), splits.fingerprint,
                             Store(tmp_path / f"store-{backend.name}"))
        assert results[1].diverged_at_epoch is not None and results[1].weights is None
        assert len(results[1].history["train_loss"]) == results[1].diverged_at_epoch - 1
        assert all(r.diverged_at_epoch is None and len(r.history["val_loss"]) == 3 for r in (results[0], results[2]))
        assert select(results) in (0, 2)


def test_backends_agree_in_float64_and_select_the_same_config(tiny_data, tmp_path):
    grid = (Config(lr=0.05), Config(lr=0.05, momentum=0.9, weight_decay=0.01), Config(lr=0.02, momentum=0.9, nesterov=True))
    out = {}
    for backend in ("jax", "torch"):
        settings = Settings(grid=grid, backend=backend, shuffle=True, **TINY)
        out[backend] = cifar2.run_study(settings, tiny_data, tmp_path / backend, tmp_path / "store", cache_dir=tmp_path / "c")
    worst = 0.0
    for a, b in zip(out["jax"]["grid"], out["torch"]["grid"]):
        for metric in a["history"]:
            x, y = np.array(a["history"][metric]), np.array(b["history"][metric])
            worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-300))))
    assert worst <= 1e-9, worst
    assert out["jax"]["selection"]["index"] == out["torch"]["selection"]["index"]
    assert out["jax"]["test"]["selected"]["confusion"] == out["torch"]["test"]["selected"]["confusion"]


def test_vmapped_grid_equals_configs_one_by_one(tiny_data, tmp_path):
    grid = (Config(lr=0.05), Config(lr=0.05, momentum=0.9), Config(lr=0.1, weight_decay=0.01, momentum=0.5, dampening=0.2))
    settings = Settings(grid=grid, **TINY)
    splits = _splits(tiny_data, settings, tmp_path)
    spec = settings.spec()
    weights = initial_weights(spec.sizes, settings.seed)
    together = train_grid(JaxBackend(splits, settings), spec, settings, weights, splits.fingerprint, Store(tmp_path / "a"))

    class OneByOne(JaxBackend):
        unit_size = 1

    alone = train_grid(OneByOne(splits, settings), spec, settings, weights, splits.fingerprint, Store(tmp_path / "b"))
    for a, b in zip(together, alone):
        for metric in a.history:
            np.testing.assert_allclose(a.history[metric], b.history[metric], rtol=1e-10)
        for (Wa, ba), (Wb, bb) in zip(a.weights, b.weights):
            np.testing.assert_allclose(Wa, Wb, rtol=1e-10, atol=1e-12)


def test_stored_configs_are_reused_and_fresh_retrains(tiny_data, tmp_path):
    settings = Settings(grid=(Config(lr=0.05), Config(lr=0.05, momentum=0.9)), **TINY)
    splits = _splits(tiny_data, settings, tmp_path)
    spec = settings.spec()
    weights = initial_weights(spec.sizes, settings.seed)
    backend = JaxBackend(splits, settings)
    first = train_grid(backend, spec, settings, weights, splits.fingerprint, Store(tmp_path / "s"))

    class Forbidden(JaxBackend):
        def start(self, *args):
            raise AssertionError("retrained a stored config")

    again = train_grid(Forbidden(splits, settings), spec, settings, weights, splits.fingerprint, Store(tmp_path / "s"))
    assert [r.history for r in again] == [r.history for r in first]
    with pytest.raises(AssertionError, match="retrained"):
        train_grid(Forbidden(splits, settings), spec, settings, weights, splits.fingerprint, Store(tmp_path / "s"), fresh=True)
    longer = Settings(**{**settings.__dict__, "epochs": 4})  # other settings, other key: trained, not reused
    with pytest.raises(AssertionError, match="retrained"):
        train_grid(Forbidden(splits, longer), spec, longer, weights, splits.fingerprint, Store(tmp_path / "s"))


def _cli(tiny_data, tmp_path, store, out, *extra):
    return [sys.executable, "-m", "experiments.cifar2", "--data-dir", str(tiny_data), "--cache-dir", str(tmp_path / "c"),
            "--store", str(store), "--out", str(out), "--hidden", "64", "--epochs", "40", "--batch-size", "8",
            "--momentum", "0", "0.9", "--checkpoint-every", "0", "--quiet", *extra]


def test_kill_9_then_resume_equals_an_uninterrupted_run(tiny_data, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    store = tmp_path / "store"
    proc = subprocess.Popen(_cli(tiny_data, tmp_path, store, tmp_path / "killed"), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not list(store.glob("inflight-*.npz")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(store.glob("inflight-*.npz")), "no checkpoint was written before the kill"
    resumed = subprocess.run(_cli(tiny_data, tmp_path, store, tmp_path / "resumed"), cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    clean = subprocess.run(_cli(tiny_data, tmp_path, tmp_path / "store2", tmp_path / "clean"), cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr
    a = json.loads((tmp_path / "resumed" / "results.json").read_text())
    b = json.loads((tmp_path / "clean" / "results.json").read_text())
    assert a["grid"] == [{**g, "seconds": r["seconds"]} for g, r in zip(b["grid"], a["grid"])]  # bit for bit
    assert a["test"] == b["test"]
    assert not list(store.glob("inflight-*.npz"))


def test_cli_smoke(tiny_data, tmp_path, capsys):
    code = cifar2.main(["--data-dir", str(tiny_data), "--cache-dir", str(tmp_path / "c"), "--store", str(tmp_path / "s"),
                        "--out", str(tmp_path / "out"), "--hidden", "8", "--epochs", "2", "--batch-size", "16",
                        "--lr", "0.05", "--momentum", "0.9", "--quiet"])
    assert code == 0
    assert "selected lr=0.05 wd=0 m=0.9" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "results.json").read_text())["run"]["versions"]["jax"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data-dir", "/nonexistent/cifar"], "No CIFAR-10 data found under /nonexistent/cifar"),
        (["--classes", "airplane", "zebra"], "classes ['zebra'] not found"),
        (["--lr", "-0.1"], "invalid grid config lr=-0.1"),
        (["--epochs", "0"], "'epochs' must be a positive integer"),
        (["--dtype", "float16"], "'dtype' must be one of"),
        (["--backend", "numpy"], "'backend' must be one of"),
        (["--momentum", "0.9", "--nesterov", "--dampening", "0.5"], "Nesterov momentum requires"),
        (["--out", "/proc/forbidden"], "output folder /proc/forbidden is not writable"),
        (["--val-fraction", "0.001"], "validation split has no images"),
    ],
)
def test_cli_bad_input_fails_early_with_a_clear_message(tiny_data, tmp_path, capsys, extra, message):
    args = ["--data-dir", str(tiny_data), "--cache-dir", str(tmp_path / "c"), "--store", str(tmp_path / "s"),
            "--out", str(tmp_path / "out"), "--quiet", *extra]
    assert cifar2.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list((tmp_path / "s").glob("*.json"))  # nothing was trained


def test_grid_file(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"configs": [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.01}], "epochs": 3}))
    args = cifar2.parse_args(["--grid-file", str(path)])
    settings = cifar2.settings_from_args(args)
    assert settings.grid == (Config(lr=0.1, momentum=0.9), Config(lr=0.01)) and settings.epochs == 3
    path.write_text(json.dumps({"configs": [{"lr": 0.1, "momentun": 0.9}]}))
    with pytest.raises(SettingsError, match=r"configs\[0\]"):
        cifar2.settings_from_args(cifar2.parse_args(["--grid-file", str(path)]))
    path.write_text(json.dumps({"configs": [{"lr": "fast"}]}))
    with pytest.raises(SettingsError, match="'lr' must be a number"):
        cifar2.settings_from_args(cifar2.parse_args(["--grid-file", str(path)]))


def test_default_settings_are_the_studys():
    s = Settings()
    assert s.epochs == 50 and s.batch_size == 256 and s.dtype == "float64" and s.seed == 265 and not s.shuffle
    assert [(c.weight_decay, c.momentum) for c in s.grid] == [(0, 0), (0.01, 0), (0.9, 0), (0, 0.01), (0, 0.9), (0.01, 0.9), (0.9, 0.01)]
    assert all(c.lr == 0.01 for c in s.grid) and s.spec().sizes == (3072, 512, 128, 32, 2)


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/cifar10-jpeg")
def test_short_real_data_run_beats_the_majority_baseline(tmp_path):
    settings = Settings(grid=grid_from_lists([0.01], [0.0, 0.9], None), epochs=2)
    results = cifar2.run_study(settings, SHARED, tmp_path / "out", tmp_path / "store")
    assert results["data"]["splits"]["train"]["size"] == 9000 and results["data"]["splits"]["test"]["size"] == 2000
    assert results["test"]["selected"]["accuracy"] > results["test"]["majority"]["accuracy"] + 0.1
    assert results["selection"]["val_accuracy"] > results["baselines"]["majority"]["val_accuracy"] + 0.1


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/cifar10-jpeg")
def test_default_grid_on_real_data_same_numbers_on_both_backends(tmp_path):
    """The study's own grid, network and data for 3 epochs: jax and torch agree to 1e-9 and select the same config."""
    out = {}
    for backend in ("jax", "torch"):
        settings = Settings(epochs=3, backend=backend)
        out[backend] = cifar2.run_study(settings, SHARED, tmp_path / backend, tmp_path / "store")
    for a, b in zip(out["jax"]["grid"], out["torch"]["grid"]):
        for metric in a["history"]:
            np.testing.assert_allclose(a["history"][metric], b["history"][metric], rtol=1e-9)
    assert out["jax"]["selection"]["index"] == out["torch"]["selection"]["index"]
    np.testing.assert_allclose(out["jax"]["selection"]["val_loss"], out["torch"]["selection"]["val_loss"], rtol=1e-9)
    assert out["jax"]["test"] == out["torch"]["test"]  # from prediction counts: identical predictions


def test_changing_hyperparameter_values_does_not_recompile_the_grid(tiny_data, tmp_path):
    from experiments.backends import _grid_epoch_jit

    def run(grid):
        settings = Settings(grid=grid, **{**TINY, "epochs": 1})
        splits = _splits(tiny_data, settings, tmp_path)
        backend = JaxBackend(splits, settings)
        spec = settings.spec()
        backend.run_epoch(backend.start(spec, grid, initial_weights(spec.sizes, settings.seed)), 1)

    run((Config(lr=0.05), Config(lr=0.01, momentum=0.9)))
    compiled = _grid_epoch_jit._cache_size()
    run((Config(lr=0.2, weight_decay=0.5), Config(lr=0.001, momentum=0.5, dampening=0.3)))
    assert _grid_epoch_jit._cache_size() == compiled
    run((Config(lr=0.2, momentum=0.9, nesterov=True), Config(lr=0.1, momentum=0.5, nesterov=True)))
    assert _grid_epoch_jit._cache_size() == compiled + 1  # Nesterov is static: one more program


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_float32_runs_in_float32(tiny_data, tmp_path, backend):
    settings = Settings(grid=(Config(lr=0.05, momentum=0.9),), dtype="float32", backend=backend, **TINY)
    splits = _splits(tiny_data, settings, tmp_path)
    assert splits.x_train.dtype == np.float32
    spec = settings.spec()
    (result,) = train_grid(make_backend(splits, settings), spec, settings, initial_weights(spec.sizes, settings.seed),
                           splits.fingerprint, Store(tmp_path / "s"))
    assert all(W.dtype == np.float32 and b.dtype == np.float32 for W, b in result.weights)
    assert result.history["train_loss"][-1] < result.history["train_loss"][0]
