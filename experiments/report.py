"""``report.md`` and ``results.csv``, generated from ``results.json``'s numbers only."""

from __future__ import annotations

import csv
import io
import math
from typing import Any


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _grid_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for i, r in enumerate(results["grid"]):
        h = r["history"]
        best = max(range(len(h["val_accuracy"])), key=lambda e: h["val_accuracy"][e]) if h["val_accuracy"] else None
        rows.append({
            "index": i, "label": r["label"], **r["config"],
            "final_train_loss": h["train_loss"][-1] if h["train_loss"] else None,
            "final_val_loss": h["val_loss"][-1] if h["val_loss"] else None,
            "final_train_accuracy": h["train_accuracy"][-1] if h["train_accuracy"] else None,
            "final_val_accuracy": h["val_accuracy"][-1] if h["val_accuracy"] else None,
            "best_val_accuracy": h["val_accuracy"][best] if best is not None else None,
            "best_val_epoch": best + 1 if best is not None else None,
            "diverged_at_epoch": r["diverged_at_epoch"], "seconds": round(r["seconds"], 2),
            "selected": i == results["selection"]["index"],
        })
    return rows


def results_csv(results: dict[str, Any]) -> str:
    rows = _grid_rows(results)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "—"
    return _pct(value) if pct else f"{value:.4f}"


def _commentary(results: dict[str, Any]) -> list[str]:
    """Observations computed from the numbers: fit, margin over the baselines, errors per class, the grid's spread."""
    notes = []
    sel = results["grid"][results["selection"]["index"]]
    h = sel["history"]
    gap = h["train_accuracy"][-1] - h["val_accuracy"][-1]
    min_val = min(h["val_loss"])
    min_epoch = h["val_loss"].index(min_val) + 1
    if gap > 0.05:
        notes.append(f"The selected model fits the training split much better than validation (train accuracy "
                     f"{_pct(h['train_accuracy'][-1])} vs {_pct(h['val_accuracy'][-1])}, a gap of {100 * gap:.1f} points): it overfits.")
    elif h["train_accuracy"][-1] < 0.8:
        notes.append(f"Train accuracy stays at {_pct(h['train_accuracy'][-1])}: the model underfits; more epochs or capacity could help.")
    else:
        notes.append(f"Train and validation accuracy are close ({100 * gap:.1f} points apart): little overfitting.")
    if h["val_loss"][-1] > 1.1 * min_val:
        notes.append(f"Its validation loss bottomed out at epoch {min_epoch} ({min_val:.4f}) and ended at "
                     f"{h['val_loss'][-1]:.4f}: training past epoch {min_epoch} made the predictions overconfident, "
                     "although selection uses accuracy, not loss.")
    test = results["test"]["selected"]
    for name in ("majority", "linear"):
        base = results["test"].get(name)
        if base is None:
            continue
        margin = test["accuracy"] - base["accuracy"]
        outside = base["accuracy"] < test["ci95"][0]
        notes.append(f"On the test set the MLP beats the {name} baseline by {100 * margin:.1f} points "
                     f"({_pct(test['accuracy'])} vs {_pct(base['accuracy'])}); the baseline lies "
                     f"{'outside' if outside else 'inside'} the MLP's 95% interval.")
    per_class = test["per_class_accuracy"]
    worst = min(per_class, key=per_class.get)
    best = max(per_class, key=per_class.get)
    if worst != best:
        notes.append(f"Errors are not symmetric: {worst} images are recognised {_pct(per_class[worst])} of the time, "
                     f"{best} images {_pct(per_class[best])}.")
    valid = [r for r in results["grid"] if r["diverged_at_epoch"] is None]
    accs = [r["history"]["val_accuracy"][-1] for r in valid]
    worst_cfg = min(valid, key=lambda r: r["history"]["val_accuracy"][-1])
    notes.append(f"Across the grid, final validation accuracy spans {_pct(min(accs))} ({worst_cfg['label']}) to "
                 f"{_pct(max(accs))} ({sel['label']}).")
    peak = max(valid, key=lambda r: max(r["history"]["val_accuracy"]))
    peak_acc = max(peak["history"]["val_accuracy"])
    if peak_acc > sel["history"]["val_accuracy"][-1] + 0.01:
        epoch = peak["history"]["val_accuracy"].index(peak_acc) + 1
        notes.append(f"{peak['label']} reached {_pct(peak_acc)} validation accuracy at epoch {epoch} but ended at "
                     f"{_pct(peak['history']['val_accuracy'][-1])}: early stopping would have picked it. This study "
                     "selects and tests each config's final model, so that gain is left on the table by design.")
    chance = math.log(len(results["data"]["classes"]))
    collapsed = [r for r in valid if abs(r["history"]["train_loss"][-1] - chance) < 0.01]
    if collapsed:
        notes.append(f"{', '.join(r['label'] for r in collapsed)} ended with a training loss of ln({len(results['data']['classes'])}) "
                     f"= {chance:.4f}, the loss of a constant uniform prediction: the decay term (weight decay up to "
                     f"{max(r['config']['weight_decay'] for r in collapsed):g}) drove the weights to zero, so these "
                     "configs learned nothing (underfitting by over-regularisation).")
    diverged = [r["label"] for r in results["grid"] if r["diverged_at_epoch"] is not None]
    if diverged:
        notes.append(f"Diverged and excluded from selection: {', '.join(diverged)}.")
    return notes


def report_markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    data = results["data"]
    sel = results["selection"]
    test = results["test"]
    classes = data["classes"]
    lines = [
        "# CIFAR-10 model selection: " + " vs ".join(classes), "",
        f"Run {results['run']['started']}, backend **{s['backend']}**, {s['dtype']}, {s['epochs']} epochs, batch {s['batch_size']}, "
        f"seed {s['seed']}, {'seeded shuffling' if s['shuffle'] else 'no shuffling'}. Training wall time "
        f"{results['run']['training_seconds']:.1f} s (total {results['run']['total_seconds']:.1f} s).", "",
        f"Command: `{results['run']['command']}`", "",
        "## Data", "",
        f"Source: {data['source']} (fingerprint `{data['fingerprint']}`).", "",
        "| split | images | " + " | ".join(classes) + " | pixel range | channel mean (R, G, B) | channel std |",
        "|---|---|" + "---|" * len(classes) + "---|---|---|",
    ]
    for name, d in data["splits"].items():
        counts = " | ".join(str(d["class_counts"][c]) for c in classes)
        lines.append(f"| {name} | {d['size']} | {counts} | {d['pixel_min']}–{d['pixel_max']} | "
                     f"{', '.join(f'{v:.3f}' for v in d['channel_mean'])} | {', '.join(f'{v:.3f}' for v in d['channel_std'])} |")
    norm = data["normalisation"]
    lines += [
        "",
        f"Normalisation: per-channel mean {', '.join(f'{v:.4f}' for v in norm['mean'])} and std "
        f"{', '.join(f'{v:.4f}' for v in norm['std'])}, computed on the {norm['computed_on']} and applied to every split. "
        f"Non-finite values after normalisation: {norm['non_finite_values']}; largest |value|: {norm['max_abs_normalised']:.2f}. "
        f"Exact duplicates of training images: {data['duplicates']['validation_in_train']} in validation, "
        f"{data['duplicates']['test_in_train']} in test.", "",
        "![samples](figures/samples.png)", "",
        "## Grid", "",
        f"MLP {'-'.join(map(str, results['model']['sizes']))}, ReLU, cross-entropy; every config starts from the same weights "
        f"(`torch.manual_seed({s['seed']})`).", "",
        "| # | config | train loss | val loss | train acc | val acc | best val acc (epoch) | diverged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in _grid_rows(results):
        mark = " **(selected)**" if row["selected"] else ""
        best = f"{_fmt(row['best_val_accuracy'], True)} ({row['best_val_epoch']})" if row["best_val_epoch"] else "—"
        lines.append(f"| {row['index']} | {row['label']}{mark} | {_fmt(row['final_train_loss'])} | {_fmt(row['final_val_loss'])} | "
                     f"{_fmt(row['final_train_accuracy'], True)} | {_fmt(row['final_val_accuracy'], True)} | {best} | "
                     f"{row['diverged_at_epoch'] or 'no'} |")
    base = results["baselines"]
    lines += [
        "",
        f"Baselines on validation: majority class ({base['majority']['class']}) {_pct(base['majority']['val_accuracy'])}; "
        f"linear {results['model']['sizes'][0]}-{len(classes)} model, same trainer and grid, best config "
        f"{base['linear']['label']}: {_pct(base['linear']['val_accuracy'])}.", "",
        "## Selection", "",
        f"Selected automatically: **{sel['label']}**, final validation accuracy {_pct(sel['val_accuracy'])} "
        f"(rule: {sel['rule']}).", "",
        "## Test (evaluated once, after selection)", "",
        f"Accuracy **{_pct(test['selected']['accuracy'])}** on {test['selected']['n']} images, 95% interval "
        f"[{_pct(test['selected']['ci95'][0])}, {_pct(test['selected']['ci95'][1])}] (Wilson).", "",
        "| class | accuracy |", "|---|---|",
    ]
    lines += [f"| {c} | {_pct(a)} |" for c, a in test["selected"]["per_class_accuracy"].items()]
    lines += ["", "Confusion matrix (rows: true, columns: predicted):", "",
              "| | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    lines += [f"| {c} | " + " | ".join(str(v) for v in row) + " |" for c, row in zip(classes, test["selected"]["confusion"])]
    lines += ["", f"Baselines on test: majority {_pct(test['majority']['accuracy'])}, linear {_pct(test['linear']['accuracy'])}.", ""]
    lines += ["## Commentary", ""] + [f"- {n}" for n in _commentary(results)]
    lines += ["", "## Figures", "", "![loss curves](figures/loss_curves.png)", "", "![accuracy curves](figures/accuracy_curves.png)", "",
              "![confusion matrix](figures/confusion.png)", "", "![misclassified](figures/misclassified.png)", ""]
    return "\n".join(lines)
