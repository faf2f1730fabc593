"""PVF campaign report: CSV and markdown tables per grouping key, PNG plots with interval bars.

Tables come from :mod:`faults.pvf.results` (see there for every column); any criterion can be
re-applied from the stored raw deviations. Written into ``DIR/report`` (or ``report_dir``):
``pvf_by_<key>.csv`` and ``.png``, ``pvf_by_bit.png``, ``report.md``, ``summary.json``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from accelsim.errors import UserError

from faults.common import outcome as oc
from faults.common import stats
from faults.common.files import csv_text, write_text_atomic
from faults.pvf.results import GROUP_KEYS, GroupRow, group_table, load, population_estimate
from faults.report.pvf_plots import plot_bits, plot_groups


class ReportError(UserError, ValueError):
    """Nothing to report (one line)."""


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
    """One CSV row per group (every :class:`GroupRow` field), written atomically."""
    write_text_atomic(path, csv_text([r.as_dict() for r in rows]) or ",".join(GroupRow.__dataclass_fields__) + "\n")


def write_report(
    out_dir: str | Path, *, criterion: str | None = None, confidence: float | None = None,
    method: str | None = None, report_dir: str | Path | None = None, plots: bool = True,
) -> dict[str, Any]:
    """Write tables and plots for the campaign in ``out_dir``; returns what was written."""
    out_dir = Path(out_dir)
    config, cells, trials = load(out_dir, criterion)
    if not trials:
        raise ReportError(f"{out_dir}: the campaign has no finished trials yet")
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
    pop = population_estimate(trials, cells, confidence, method)
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
            plot_groups(png, rows, f"PVF by {key} — {model}", key, horizontal=key != "dtype")
            written["plots"].append(str(png))
    if plots and any(t["bit"] >= 0 for t in trials):
        png = target / "pvf_by_bit.png"
        plot_bits(png, trials, confidence, method, f"PVF by bit position — {model}")
        written["plots"].append(str(png))
    md = target / "report.md"
    write_text_atomic(md, "\n".join(sections) + "\n")
    written["markdown"] = str(md)
    write_text_atomic(target / "summary.json", json.dumps(
        {"faults": n, "sdc": sdc, "due": due, "pvf": sdc / n, "lo": lo, "hi": hi,
         "criterion": config.get("criterion"), "confidence": confidence, "method": method,
         "by_dtype": [r.as_dict() for r in total]}, indent=2))
    written["summary"] = str(target / "summary.json")
    return written
