"""PVF campaign report: CSV and markdown tables per grouping key, PNG plots with interval bars.

Tables come from :mod:`faults.pvf.results` (see there for every column); any criterion and any
non-finite policy can be re-applied from the stored raw deviations. Written into ``DIR/report``
(or ``report_dir``): ``pvf_by_<key>.csv`` and ``.png``, ``pvf_by_bit.png``, ``report.md``,
``summary.json``.

The headline of every table and of the summary is the **bits-weighted** PVF (the SDC
probability of a uniformly random stored bit: strata weighted by their share of the
population) with its stratified interval; the unweighted pooled count ``SDC / faults`` sits
beside it, labelled "pooled". PVF is shown both ways for non-finite (NaN/Inf) outputs — counted
as SDC and excluded — whatever the campaign's policy (default: SDC, accelerators do not trap on
NaN). For stuck-at models (or whenever some faults changed no bit) the activated share and the
PVF among activated faults stand beside the unconditional PVF. Strata without trials are never
dropped: tables flag them and their weight takes its worst case in the interval.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from accelsim.errors import UserError

from faults.common.files import csv_text, write_text_atomic
from faults.pvf.results import (GROUP_KEYS, GROUP_ROW_FIELDS, GroupRow, group_table, load,
                                population_estimates)
from faults.report.pvf_plots import plot_bits, plot_groups


class ReportError(UserError, ValueError):
    """Nothing to report (one line)."""


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x == 0:
        return "0"
    if x < 1e-12:
        return "<1e-12"
    return f"{x:.4f}" if x >= 1e-3 else f"{x:.2e}"


def _ci(lo: float, hi: float) -> str:
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def markdown_table(rows: Sequence[GroupRow], confidence: float, activation: bool = False) -> str:
    """Headline bits-weighted PVF and interval first; pooled count, DUE, non-finite both ways,
    (activation) and flags beside it."""
    pct = int(round(confidence * 100))
    cols = [rows[0].key if rows else "key", "faults", "SDC", "PVF (bits-weighted)", f"{pct}% interval",
            "pooled SDC/faults", "DUE rate", "non-finite", "PVF, non-finite as SDC", "PVF, non-finite excluded"]
    align = ["---", "---:", "---:", "---:", "---", "---:", "---:", "---:", "---:", "---:"]
    if activation:
        cols += ["activated", "PVF among activated", f"{pct}% interval (activated)"]
        align += ["---:", "---:", "---"]
    cols.append("notes")
    align.append("---")
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(align) + "|"]
    for r in rows:
        cells = [r.value, str(r.n), str(r.sdc), _fmt(r.pvf), _ci(r.lo, r.hi), _fmt(r.pvf_pooled), _fmt(r.due_rate),
                 str(r.nonfinite), _fmt(r.pvf_nf_sdc), _fmt(r.pvf_nf_excluded)]
        if activation:
            cells += [_fmt(r.activated_share), _fmt(r.pvf_activated), _ci(r.pvf_activated_lo, r.pvf_activated_hi)]
        cells.append(_notes(r))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _notes(r: GroupRow) -> str:
    notes = []
    if r.unsampled:
        notes.append(f"**{r.unsampled} of {r.cells} strata unsampled** (worst case in interval)")
    if r.exact:
        notes.append("exact (every fault, every input)")
    if r.cells > 1 and not r.unsampled:
        notes.append(f"{r.cells} strata")
    return "; ".join(notes)


def write_csv(path: Path, rows: Sequence[GroupRow]) -> None:
    """One CSV row per group (every :class:`GroupRow` field), written atomically."""
    write_text_atomic(path, csv_text([r.as_dict() for r in rows]) or ",".join(GROUP_ROW_FIELDS) + "\n")


def _header(config: Mapping[str, Any], pop: Mapping[str, Any], method: str, confidence: float,
            activation: bool) -> list[str]:
    n, sdc, due = pop["n"], pop["sdc"], pop["due"]
    head, pooled, nf_sdc, nf_ex = pop["pvf"], pop["pooled"], pop["nf_sdc"], pop["nf_excluded"]
    apart = pop["nonfinite"] if config.get("nonfinite") == "apart" else 0
    masked = n - sdc - due - apart
    lines = [
        f"# PVF report: {config.get('model_name') or config.get('model', '')}",
        "",
        f"- fault model: `{config.get('fault')}`; storage dtype(s): {', '.join(config.get('dtypes', []))}; "
        f"target: `{', '.join(config.get('target') or ['all'])}`; strata: `{', '.join(config.get('by') or ['none'])}`",
        f"- criterion: `{config.get('criterion')}`; non-finite outputs: `{config.get('nonfinite')}`; inputs per "
        f"fault: {config.get('inputs_per_trial')}; seed: {config.get('seed')}; interval: {method}, "
        f"{int(round(confidence * 100))}%",
        f"- **PVF (bits-weighted over {pop['cells']} strata): {_fmt(head.pvf)} {_ci(head.lo, head.hi)}**"
        + (" (exact)" if head.exact else ""),
        f"- pooled count (unweighted): {n} faults, SDC {sdc} ({_fmt(pooled.pvf)} {_ci(pooled.lo, pooled.hi)}), "
        f"DUE {due} ({_fmt(due / n if n else float('nan'))}), "
        + (f"non-finite apart {apart}, " if config.get("nonfinite") == "apart" else "") + f"masked {masked}",
        f"- non-finite (NaN/Inf) outputs: {pop['nonfinite']} faults; PVF with non-finite counted as SDC "
        f"{_fmt(nf_sdc.pvf)} {_ci(nf_sdc.lo, nf_sdc.hi)}, excluded {_fmt(nf_ex.pvf)} {_ci(nf_ex.lo, nf_ex.hi)}",
    ]
    if activation:
        act, cond = pop["activated_share"], pop["pvf_activated"]
        lines.append(f"- activated faults (a stored bit changed): {pop['activated']} of {n}, share "
                     f"{_fmt(act.pvf)} {_ci(act.lo, act.hi)}; PVF among activated faults {_fmt(cond.pvf)} "
                     f"{_ci(cond.lo, cond.hi)} (the PVF above counts non-activated faults as masked)")
    if pop["unsampled"]:
        lines.append(f"- **{pop['unsampled']} of {pop['cells']} strata have no trials yet**: the interval gives "
                     f"their share of the population its worst case [0, 1]")
    return lines + [""]


def write_report(
    out_dir: str | Path, *, criterion: str | None = None, confidence: float | None = None,
    method: str | None = None, report_dir: str | Path | None = None, plots: bool = True,
    nonfinite: str | None = None,
) -> dict[str, Any]:
    """Write tables and plots for the campaign in ``out_dir``; returns what was written.
    ``criterion`` / ``nonfinite`` re-apply another criterion / non-finite policy."""
    out_dir = Path(out_dir)
    config, cells, trials = load(out_dir, criterion, nonfinite)
    if not trials:
        raise ReportError(f"{out_dir}: the campaign has no finished trials yet")
    confidence = confidence or float(config.get("confidence", 0.95))
    method = method or str(config.get("method", "wilson"))
    target = Path(report_dir) if report_dir else out_dir / "report"
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, Any] = {"tables": {}, "plots": []}
    model = config.get("model_name") or config.get("model", "")
    pop = population_estimates(trials, cells, confidence, method, config)
    activation = str(config.get("fault", "")).startswith(("stuck", "sa")) or pop["activated"] < pop["n"]
    sections: list[str] = _header(config, pop, method, confidence, activation)
    shown: list[list[tuple]] = []
    total = group_table(trials, cells, "dtype", confidence, method, config)
    for key in GROUP_KEYS:
        if key == "bit" and all(t["bit"] < 0 for t in trials):
            continue
        rows = group_table(trials, cells, key, confidence, method, config)
        csv_path = target / f"pvf_by_{key}.csv"
        write_csv(csv_path, rows)
        written["tables"][key] = str(csv_path)
        signature = [(r.value, r.n, r.sdc, r.due) for r in rows]
        duplicate = signature in shown or (key == "param" and len(rows) > 60) or (len(rows) < 2 and key != "dtype")
        if not duplicate:  # e.g. layer == component for LeNet: one table is enough
            shown.append(signature)
            sections += [f"## PVF by {key}", "", markdown_table(rows, confidence, activation), ""]
        if plots and key in ("component", "layer", "group", "dtype"):
            png = target / f"pvf_by_{key}.png"
            plot_groups(png, rows, f"PVF (bits-weighted) by {key} — {model}", key, horizontal=key != "dtype")
            written["plots"].append(str(png))
    if plots and any(t["bit"] >= 0 for t in trials):
        png = target / "pvf_by_bit.png"
        plot_bits(png, trials, cells, config, confidence, method, f"PVF (bits-weighted) by bit position — {model}")
        written["plots"].append(str(png))
    md = target / "report.md"
    write_text_atomic(md, "\n".join(sections) + "\n")
    written["markdown"] = str(md)
    head, pooled = pop["pvf"], pop["pooled"]
    summary = {
        "faults": pop["n"], "sdc": pop["sdc"], "due": pop["due"], "nonfinite": pop["nonfinite"],
        "pvf": head.pvf, "lo": head.lo, "hi": head.hi, "weighting": "bits", "unsampled_strata": pop["unsampled"],
        "pvf_pooled": pooled.pvf, "pooled_lo": pooled.lo, "pooled_hi": pooled.hi,
        "pvf_nonfinite_sdc": [pop["nf_sdc"].pvf, pop["nf_sdc"].lo, pop["nf_sdc"].hi],
        "pvf_nonfinite_excluded": [pop["nf_excluded"].pvf, pop["nf_excluded"].lo, pop["nf_excluded"].hi],
        "activated": pop["activated"],
        "activated_share": [pop["activated_share"].pvf, pop["activated_share"].lo, pop["activated_share"].hi],
        "pvf_activated": [pop["pvf_activated"].pvf, pop["pvf_activated"].lo, pop["pvf_activated"].hi],
        "criterion": config.get("criterion"), "nonfinite_policy": config.get("nonfinite"),
        "confidence": confidence, "method": method, "by_dtype": [r.as_dict() for r in total],
    }
    write_text_atomic(target / "summary.json", json.dumps(summary, indent=2))
    written["summary"] = str(target / "summary.json")
    return written
