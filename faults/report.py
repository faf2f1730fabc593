"""Campaign reports: CSV and markdown tables, PNG plots with interval bars.

Read from a campaign store (``DIR/trials.sqlite``). Per grouping key (component, layer,
group, bit, dtype, param) every table row gives: trials (faults) ``n``; SDC count and PVF =
SDC / n with its interval (Wilson or Clopper–Pearson: the fault is the sampling unit, a
trial with several inputs is SDC when any input is); DUE count and rate with interval; when
trials have several inputs, the per-input SDC rate with a cluster-aware interval; and, when
the group spans cells of different sizes, ``pvf_weighted`` = Σ_cells (bits_c / Σ bits) ·
PVF_c (the population PVF of a uniformly random stored bit of the group).

Any criterion can be re-applied (``criterion=...``) from the stored raw deviations.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from faults import outcome as oc
from faults import stats
from faults.store import TrialStore

GROUP_KEYS = ("component", "layer", "group", "param", "bit", "dtype")
_COLUMN_OF = {"group": "grp"}


@dataclass
class GroupRow:
    key: str
    value: str
    n: int
    sdc: int
    due: int
    pvf: float
    lo: float
    hi: float
    due_rate: float
    due_lo: float
    due_hi: float
    input_rate: float
    input_lo: float
    input_hi: float
    pvf_weighted: float
    weighted_lo: float
    weighted_hi: float
    bits: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load(out_dir: str | Path, criterion: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(config, cells, trials); with ``criterion`` the outcomes are recomputed from the records."""
    with TrialStore(out_dir, readonly=True) as store:
        config = store.config()
        config["model_name"] = store.meta("model_name") or config.get("model", "")
        cells = store.cells()
        cols = ["trial", "cell", "dtype", "param", "layer", "component", "grp", "role", "bit", "n_inputs",
                "n_sdc", "n_due", "outcome", "max_abs_dev", "early_masked"]
        if criterion:
            cols.append("records")
        trials = store.trials(cols)
    if criterion:
        crit = oc.parse_criterion(criterion)
        for row in trials:
            rec = oc.records_from_bytes(row.pop("records"))
            outs = crit.outcomes(rec)
            row["outcome"] = int(outs.max()) if outs.size else 0
            row["n_sdc"] = int(np.sum(outs == oc.SDC))
            row["n_due"] = int(np.sum(outs == oc.DUE))
        config = {**config, "criterion": crit.text}
    return config, cells, trials


def group_table(
    trials: Sequence[dict[str, Any]], cells: Sequence[dict[str, Any]], key: str,
    confidence: float = 0.95, method: str = "wilson",
) -> list[GroupRow]:
    """One row per value of ``key`` (sorted naturally)."""
    column = _COLUMN_OF.get(key, key)
    bits_of_cell = {c["cell"]: c["bits_total"] for c in cells}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in trials:
        groups.setdefault(str(row[column]), []).append(row)
    out: list[GroupRow] = []
    for value, rows in groups.items():
        n = len(rows)
        sdc = sum(r["outcome"] == oc.SDC for r in rows)
        due = sum(r["outcome"] == oc.DUE for r in rows)
        lo, hi = stats.interval(sdc, n, confidence, method)
        dlo, dhi = stats.interval(due, n, confidence, method)
        per_input = stats.clustered_rate([r["n_sdc"] for r in rows], [r["n_inputs"] for r in rows],
                                         confidence, method)
        by_cell: dict[int, list[int]] = {}
        for r in rows:
            by_cell.setdefault(r["cell"], []).append(r["outcome"] == oc.SDC)
        cell_bits = _cell_weights(by_cell, bits_of_cell)
        weighted = stats.stratified([sum(v) for v in by_cell.values()], [len(v) for v in by_cell.values()],
                                    cell_bits, confidence, method)
        out.append(GroupRow(key, value, n, sdc, due, sdc / n, lo, hi, due / n, dlo, dhi,
                            per_input.pvf, per_input.lo, per_input.hi, weighted.pvf, weighted.lo, weighted.hi,
                            int(sum(bits_of_cell.get(c, 0) for c in by_cell))))
    return sorted(out, key=lambda g: _natural(g.value))


def _cell_weights(by_cell: dict[int, list[int]], bits_of_cell: dict[int, int]) -> list[float]:
    """Population weight of each cell: its stored bits, split evenly among the cells that share
    the same parameters (e.g. the bit-position cells of one layer)."""
    return [float(bits_of_cell.get(c, 1)) for c in by_cell]


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), "")
    except ValueError:
        import re

        return (1, 0.0, tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)))


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x == 0:
        return "0"
    return f"{x:.4f}" if x >= 1e-3 else f"{x:.2e}"


def markdown_table(rows: Sequence[GroupRow], confidence: float) -> str:
    pct = int(round(confidence * 100))
    head = (f"| {rows[0].key if rows else 'key'} | faults | SDC | PVF | {pct}% interval | DUE rate | "
            "bits-weighted PVF |\n|---|---:|---:|---:|---|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r.value} | {r.n} | {r.sdc} | {_fmt(r.pvf)} | [{_fmt(r.lo)}, {_fmt(r.hi)}] | "
            f"{_fmt(r.due_rate)} | {_fmt(r.pvf_weighted)} |"
        )
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[GroupRow]) -> None:
    with open(path, "w", newline="") as fh:
        fields = list(GroupRow.__dataclass_fields__)
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(r.as_dict())


def _plot_groups(path: Path, rows: Sequence[GroupRow], title: str, xlabel: str, horizontal: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r.value for r in rows]
    pvf = np.array([r.pvf for r in rows])
    err = np.array([[max(0.0, r.pvf - r.lo) for r in rows], [max(0.0, r.hi - r.pvf) for r in rows]])
    size = (7.5, max(2.5, 0.3 * len(rows) + 1.2)) if horizontal else (max(6.0, 0.28 * len(rows) + 2), 4.0)
    fig, ax = plt.subplots(figsize=size)
    pos = np.arange(len(rows))
    if horizontal:
        ax.barh(pos, pvf, xerr=err, color="#4c72b0", ecolor="black", capsize=3)
        ax.set_yticks(pos, labels)
        ax.invert_yaxis()
        ax.set_xlabel("PVF (SDC probability)")
        ax.set_ylabel(xlabel)
    else:
        ax.bar(pos, pvf, yerr=err, color="#4c72b0", ecolor="black", capsize=2)
        ax.set_xticks(pos, labels, rotation=90 if len(rows) > 12 else 0)
        ax.set_ylabel("PVF (SDC probability)")
        ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_bits(path: Path, trials: Sequence[dict[str, Any]], confidence: float, method: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for dtype in sorted({t["dtype"] for t in trials}):
        sub = [t for t in trials if t["dtype"] == dtype and t["bit"] >= 0]
        rows = group_table(sub, [], "bit", confidence, method)
        if not rows:
            continue
        x = np.array([int(r.value) for r in rows])
        y = np.array([r.pvf for r in rows])
        err = np.array([[r.pvf - r.lo for r in rows], [r.hi - r.pvf for r in rows]])
        ax.errorbar(x, y, yerr=np.maximum(err, 0), marker="o", ms=3, capsize=2, label=dtype)
    ax.set_xlabel("bit position (0 = LSB)")
    ax.set_ylabel("PVF (SDC probability)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out_dir: str | Path, *, criterion: str | None = None, confidence: float | None = None,
    method: str | None = None, report_dir: str | Path | None = None, plots: bool = True,
) -> dict[str, Any]:
    """Write tables and plots for the campaign in ``out_dir``; returns what was written."""
    out_dir = Path(out_dir)
    config, cells, trials = load(out_dir, criterion)
    if not trials:
        raise ValueError(f"{out_dir}: the campaign has no finished trials yet")
    confidence = confidence or float(config.get("confidence", 0.95))
    method = method or str(config.get("method", "wilson"))
    target = Path(report_dir) if report_dir else out_dir / "report"
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {"tables": {}, "plots": []}
    sections: list[str] = []
    model = config.get("model_name") or config.get("model", "")
    total = group_table(trials, cells, "dtype", confidence, method)
    n = len(trials)
    sdc = sum(t["outcome"] == oc.SDC for t in trials)
    due = sum(t["outcome"] == oc.DUE for t in trials)
    lo, hi = stats.interval(sdc, n, confidence, method)
    by_cell: dict[int, list[int]] = {}
    for t in trials:
        by_cell.setdefault(t["cell"], []).append(t["outcome"] == oc.SDC)
    bits_of_cell = {c["cell"]: c["bits_total"] for c in cells}
    pop = stats.stratified([sum(v) for v in by_cell.values()], [len(v) for v in by_cell.values()],
                           _cell_weights(by_cell, bits_of_cell), confidence, method)
    header = [
        f"# PVF report: {model}",
        "",
        f"- fault model: `{config.get('fault')}`; storage dtype(s): {', '.join(config.get('dtypes', []))}; "
        f"target: `{', '.join(config.get('target') or ['all'])}`; strata: `{', '.join(config.get('by') or ['none'])}`",
        f"- criterion: `{config.get('criterion')}`; inputs per fault: {config.get('inputs_per_trial')}; "
        f"seed: {config.get('seed')}; interval: {method}, {int(round(confidence * 100))}%",
        f"- {n} faults: SDC {sdc} (PVF {_fmt(sdc / n)} [{_fmt(lo)}, {_fmt(hi)}]), DUE {due} "
        f"({_fmt(due / n)}), masked {n - sdc - due}",
        f"- population PVF (strata weighted by their stored bits): {_fmt(pop.pvf)} "
        f"[{_fmt(pop.lo)}, {_fmt(pop.hi)}]",
        "",
    ]
    sections.extend(header)
    shown: list[list[tuple]] = []
    for key in GROUP_KEYS:
        if key == "bit" and all(t["bit"] < 0 for t in trials):
            continue
        rows = group_table(trials, cells, key, confidence, method)
        csv_path = target / f"pvf_by_{key}.csv"
        write_csv(csv_path, rows)
        written["tables"][key] = str(csv_path)
        signature = [(r.value, r.n, r.sdc, r.due) for r in rows]
        duplicate = signature in shown or (key == "param" and len(rows) > 60) or (len(rows) < 2 and key != "dtype")
        if not duplicate:  # e.g. layer == component for LeNet: one table is enough
            shown.append(signature)
            sections += [f"## PVF by {key}", "", markdown_table(rows, confidence), ""]
        if plots and key in ("component", "layer", "group", "dtype"):
            png = target / f"pvf_by_{key}.png"
            _plot_groups(png, rows, f"PVF by {key} — {model}", key, horizontal=key != "dtype")
            written["plots"].append(str(png))
    if plots and any(t["bit"] >= 0 for t in trials):
        png = target / "pvf_by_bit.png"
        _plot_bits(png, trials, confidence, method, f"PVF by bit position — {model}")
        written["plots"].append(str(png))
    md = target / "report.md"
    md.write_text("\n".join(sections) + "\n")
    written["markdown"] = str(md)
    (target / "summary.json").write_text(json.dumps(
        {"faults": n, "sdc": sdc, "due": due, "pvf": sdc / n, "lo": lo, "hi": hi,
         "criterion": config.get("criterion"), "confidence": confidence, "method": method,
         "by_dtype": [r.as_dict() for r in total]}, indent=2))
    written["summary"] = str(target / "summary.json")
    return written
