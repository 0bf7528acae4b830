"""Speed and memory of one training epoch on the study's shapes, jaxmlp against what users would otherwise write.

    python -m experiments.bench [--dtypes float64 float32] [--repeats 5] [--out bench-results/bench.json]

One process, one run: every number of a table is measured side by side on the
same machine state. Shapes: 3072-512-128-32-2, batch 256, 9000 training samples
(the CIFAR-2 training split; synthetic data). Each entry is timed after a
warm-up call (whose extra time is reported as compile time); the table shows
the median of ``--repeats`` calls. FLOPs per sample: forward ``2 m n`` and
backward ``4 m n`` per layer, minus the first layer's input gradient (``2 n_0 n_1``),
which nobody needs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402

import jaxmlp as jm  # noqa: E402
import torchref as tr  # noqa: E402
from experiments.backends import TensorBatches, _grid_epoch_jit  # noqa: E402
from experiments.parity import initial_weights  # noqa: E402
from experiments.settings import default_grid  # noqa: E402

SPEC = jm.CIFAR2_SPEC
BATCH = 256
N_TRAIN = 9000


def flops_per_sample(sizes: Sequence[int]) -> int:
    """Forward 2mn + backward 4mn per layer, minus the first layer's input gradient 2 n_0 n_1."""
    return sum(6 * m * n for m, n in zip(sizes[:-1], sizes[1:])) - 2 * sizes[0] * sizes[1]


def timed(fn: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Warm-up call (compile time = its excess over the median), then the median of ``repeats`` calls."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"seconds": median, "min": min(times), "max": max(times), "compile_seconds": max(first - median, 0.0)}


def reset_peak_rss() -> None:
    """Linux: restart the kernel's peak-RSS counter, so the next reading is the peak of what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_dtype(dtype: str, repeats: int, grid_repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(N_TRAIN, SPEC.sizes[0])).astype(dtype)
    y_np = rng.integers(0, 2, N_TRAIN)
    weights = initial_weights()
    results: dict[str, Any] = {}

    def record(name: str, fn: Callable[[], Any], flops: float | None, n_repeats: int = repeats) -> None:
        reset_peak_rss()
        entry = timed(fn, n_repeats)
        entry["gflops"] = flops / entry["seconds"] / 1e9 if flops else None
        entry["peak_rss_mb"] = peak_rss_mb()
        results[name] = entry

    # 1. The matmul ceiling through XLA (and torch's, for reference).
    for label, (m, k, n) in {"first layer 256x3072x512": (BATCH, 3072, 512), "square 2048": (2048, 2048, 2048)}.items():
        a = jnp.asarray(rng.normal(size=(m, k)), dtype)
        b = jnp.asarray(rng.normal(size=(k, n)), dtype)
        matmul = jax.jit(jnp.matmul)
        record(f"matmul ceiling, XLA, {label}", lambda: matmul(a, b), 2 * m * k * n, max(repeats, 10))
        ta, tb = torch.tensor(np.asarray(a)), torch.tensor(np.asarray(b))
        record(f"matmul, torch, {label}", lambda: ta @ tb, 2 * m * k * n, max(repeats, 10))
    epoch_flops = flops_per_sample(SPEC.sizes) * N_TRAIN

    # 2. jaxmlp: hand-written backward, the epoch as one lax.scan inside one jit.
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    batches = jm.make_batches(x, y, BATCH)
    opt = jm.SGD(lr=0.01, momentum=0.9)
    params = jm.params_from_numpy(weights, dtype)
    epoch = jax.jit(jm.train_epoch, static_argnums=(0, 1), donate_argnums=3)

    def jaxmlp_epochs(opt: jm.SGD) -> Callable[[], Any]:
        """Successive epochs of one training run: the state is donated and threaded through, as in the study."""
        holder = [jm.init_train_state(jm.params_from_numpy(weights, dtype))]

        def run() -> Any:
            holder[0], metrics = epoch(SPEC, "cross_entropy", opt, holder[0], batches)
            return metrics
        return run

    record("epoch: jaxmlp (hand-written backward)", jaxmlp_epochs(opt), epoch_flops)

    # 3. What a JAX user would write: jax.grad through a plain forward, optax SGD, the same scan.
    tx = optax.chain(optax.add_decayed_weights(0.0), optax.sgd(0.01, 0.9))

    def optax_step(carry, batch):
        p, s = carry
        loss, grads = jax.value_and_grad(jm.loss_value, argnums=1)(SPEC, p, *batch)
        updates, s = tx.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    @functools.partial(jax.jit, donate_argnums=0)
    def optax_epoch(carry, batches):
        carry, losses = jax.lax.scan(optax_step, carry, (batches.x, batches.y))
        return optax_step(carry, (batches.x_rest, batches.y_rest))

    fresh = jm.params_from_numpy(weights, dtype)
    optax_holder = [(fresh, tx.init(fresh))]

    def optax_run() -> Any:
        optax_holder[0], loss = optax_epoch(optax_holder[0], batches)
        return loss

    record("epoch: jax.grad + optax", optax_run, epoch_flops)

    # 4. PyTorch, eagerly: torch.optim.SGD, and the update written by hand (torchref.train_manual_update's).
    torch_dtype = getattr(torch, dtype)
    loader = TensorBatches(torch.as_tensor(x_np), torch.as_tensor(y_np), BATCH)
    loss_fn = torch.nn.CrossEntropyLoss()

    def torch_epoch(manual: bool) -> Callable[[], Any]:
        model = tr.MyMLP(SPEC.sizes).to(torch_dtype)
        tr.load_numpy_params(model, weights)
        update = (tr.ManualSGD(model.parameters(), 0.01, momentum=0.9) if manual
                  else torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
        return lambda: tr.train_epoch(model, loss_fn, loader, update.step)

    record("epoch: torch.optim.SGD (eager)", torch_epoch(manual=False), epoch_flops)
    record("epoch: torchref manual update (eager)", torch_epoch(manual=True), epoch_flops)

    # 5. The study's 7-config grid for one epoch.
    configs = default_grid()
    stacked = jm.stack_configs([jm.SGD(**c.sgd_kwargs()) for c in configs])
    grid_holder = [jm.replicate(jm.init_train_state(params), len(configs))]
    x_val, y_val = x[:1000], y[:1000]  # the validation pass each epoch runs with the grid

    def grid_run() -> Any:
        grid_holder[0], metrics = _grid_epoch_jit(SPEC, stacked, grid_holder[0], batches, x_val, y_val)
        return metrics

    grid_flops = len(configs) * epoch_flops
    record("grid of 7: jaxmlp vmapped (one program)", grid_run, grid_flops, grid_repeats)
    runs = [jaxmlp_epochs(jm.SGD(**c.sgd_kwargs())) for c in configs]
    record("grid of 7: jaxmlp, 7 sequential epochs", lambda: [run() for run in runs], grid_flops, grid_repeats)
    torch_epochs = [torch_epoch(manual=False) for _ in configs]
    record("grid of 7: torch.optim.SGD, 7 sequential epochs", lambda: [run() for run in torch_epochs], grid_flops, grid_repeats)

    # 6. Where a step's time goes: each matmul of one step at its own shapes, and the parameter update.
    steps_per_epoch = -(-N_TRAIN // BATCH)
    for l, (m, n) in enumerate(zip(SPEC.sizes[:-1], SPEC.sizes[1:]), start=1):
        a = jnp.asarray(rng.normal(size=(BATCH, m)), dtype)
        W = jnp.asarray(rng.normal(size=(n, m)), dtype)
        d = jnp.asarray(rng.normal(size=(BATCH, n)), dtype)
        fwd, dW, dx = jax.jit(lambda a, W: a @ W.T), jax.jit(lambda d, a: d.T @ a), jax.jit(lambda d, W: d @ W)
        record(f"step part: layer {l} forward a W^T", lambda: fwd(a, W), 2 * BATCH * m * n, max(repeats, 10))
        record(f"step part: layer {l} dW = delta^T a", lambda: dW(d, a), 2 * BATCH * m * n, max(repeats, 10))
        if l > 1:
            record(f"step part: layer {l} dL/da = delta W", lambda: dx(d, W), 2 * BATCH * m * n, max(repeats, 10))
    update = jax.jit(jm.sgd_update)
    params = jm.params_from_numpy(weights, dtype)
    sgd_state = jm.sgd_init(params)
    record("step part: SGD update (momentum)", lambda: update(opt, params, sgd_state, params), None, max(repeats, 10))
    parts = sum(v["seconds"] for k, v in results.items() if k.startswith("step part"))

    ceiling = max(results[k]["gflops"] for k in results if k.startswith("matmul ceiling"))
    for entry in results.values():
        entry["percent_of_ceiling"] = 100 * entry["gflops"] / ceiling if entry["gflops"] else None
    sec = {k: v["seconds"] for k, v in results.items()}
    ratios = {
        "jaxmlp epoch speedup over torch.optim.SGD epoch (target >= 2.5)":
            sec["epoch: torch.optim.SGD (eager)"] / sec["epoch: jaxmlp (hand-written backward)"],
        "hand-written backward speedup over jax.grad + optax (target >= 1.0)":
            sec["epoch: jax.grad + optax"] / sec["epoch: jaxmlp (hand-written backward)"],
        "vmapped grid speedup over 7 sequential torch epochs (target >= 3)":
            sec["grid of 7: torch.optim.SGD, 7 sequential epochs"] / sec["grid of 7: jaxmlp vmapped (one program)"],
        "vmapped grid speedup over 7 sequential jaxmlp epochs":
            sec["grid of 7: jaxmlp, 7 sequential epochs"] / sec["grid of 7: jaxmlp vmapped (one program)"],
        "jaxmlp epoch, percent of matmul ceiling (target >= 80)": results["epoch: jaxmlp (hand-written backward)"]["percent_of_ceiling"],
        "torch epoch, percent of matmul ceiling": results["epoch: torch.optim.SGD (eager)"]["percent_of_ceiling"],
        "study estimate, 350 config-epochs at the vmapped rate (s) (target <= 100)":
            50 * sec["grid of 7: jaxmlp vmapped (one program)"],
        "study lower bound at 100% of the ceiling (s)": 50 * grid_flops / (ceiling * 1e9),
        "sum of a step's parts x steps per epoch, over the jaxmlp epoch":
            parts * steps_per_epoch / sec["epoch: jaxmlp (hand-written backward)"],
    }
    return {"entries": results, "ratios": ratios, "ceiling_gflops": ceiling}


def print_table(dtype: str, report: dict[str, Any]) -> None:
    print(f"\n== {dtype} ==  (ceiling {report['ceiling_gflops']:.1f} GFLOP/s)")
    print(f"{'what':<50} {'median s':>10} {'compile s':>10} {'GFLOP/s':>9} {'% ceil':>7} {'peak RSS MB':>12}")
    for name, e in report["entries"].items():
        gf = f"{e['gflops']:.1f}" if e["gflops"] else "-"
        pc = f"{e['percent_of_ceiling']:.0f}" if e["percent_of_ceiling"] else "-"
        print(f"{name:<50} {e['seconds']:>10.4f} {e['compile_seconds']:>10.2f} {gf:>9} {pc:>7} {e['peak_rss_mb']:>12.0f}")
    for name, value in report["ratios"].items():
        print(f"  {name}: {value:.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per single-epoch entry (default 5)")
    parser.add_argument("--grid-repeats", type=int, default=3, help="timed calls per 7-config entry (default 3)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/bench.json"))
    args = parser.parse_args(argv)
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "devices": [str(d) for d in jax.devices()], "jax": jax.__version__, "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
        "shapes": {"sizes": list(SPEC.sizes), "batch": BATCH, "samples": N_TRAIN, "flops_per_sample": flops_per_sample(SPEC.sizes)},
    }
    for dtype in args.dtypes:
        report[dtype] = bench_dtype(dtype, args.repeats, args.grid_repeats)
        print_table(dtype, report[dtype])
    report["peak_rss_mb_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
