"""Report of an AVF study folder (written by :func:`faults.avf.study.run_study`).

``write_avf_report(dir)`` writes into ``dir/report`` (or ``report_dir``):

* ``avf.md``                 AVF by structure (direct vs joined, intervals, live/ACE share, sites
  masked without running), the gap explanation per structure, and the FIT table;
* the PNGs of :mod:`faults.report.avf_plots` (AVF by structure, PVF vs AVF per layer,
  residency timelines, FIT per structure).

``write_sweep_report(dir)`` writes ``dir/sweep.png`` and each value's study report.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from faults.avf.store import AvfStore
from faults.avf.study import StudyResult
from faults.avf.sweep import SWEEP_FILE
from faults.common.files import write_text_atomic
from faults.report.numbers import interval as _ci, sig3 as _g
from faults.report.avf_plots import avf_plots, plot_sweep


def markdown(result: StudyResult, layer_rows: list[dict]) -> str:
    """The study's markdown report (AVF by structure per sample and per event, both joins and
    their ratio, FIT, live sites by layer)."""
    conf = result.confidence
    cfg = result.config
    window = int(cfg.get("scrub_interval", 1))
    lines = [f"# AVF of {cfg.get('model_name') or '?'} on {cfg['hardware'].get('name', '?')} "
             f"({cfg['dtype']}, criterion {cfg['criterion']}, {result.total_cycles} cycles, batch {cfg.get('batch')})",
             "",
             f"Intervals: {int(conf * 100)}% {result.method}. Direct = (bit, cycle) sites drawn "
             + ("uniformly over the occupied bit-cycles (SRAM, PE; rates scaled by the exact occupied share; "
                "HBM uniform over the parameter region)" if cfg.get("sampling") == "occupied" else
                "uniformly over bits × cycles (HBM: the parameter region)")
             + ", resolved through the residency table and run through the network. Per sample: share of "
             "sample outputs incorrect; per event: share of upsets after which an inference (the batch) has an "
             "incorrect output — what FIT counts. Joined = Σ ACE·PVF / (bits·T): read-weighted (each ACE "
             "bit-cycle at the share of reads it still reaches) and full-PVF (every ACE bit-cycle at full PVF: "
             "an upper bound for dense weights), intervals stratified over the PVF strata; ratio = direct ÷ read-weighted with a MOVER interval combining the two.",
             ""]
    if window > 1:
        lines += [f"Scrub interval: {window} back-to-back inferences; an HBM upset persists until the scrub "
                  f"(later inferences see the parameter fault); rates are over the window's {window} inferences.", ""]
    lines += ["| structure | bits | sites | masked w/o run | live share | ACE share | direct AVF per sample "
              "| read-weighted join | ratio | full-PVF join | direct AVF per event |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s, r in result.structures.items():
        d, j, w = r.direct, r.joined, r.joined_rw
        lines.append(f"| {s} | {r.bits} | {d.trials} | {d.unrun} | {_g(d.live_fraction)} | {_g(d.ace_fraction)} | "
                     f"{_ci(d.avf_sdc, d.sdc_lo, d.sdc_hi)} | {_ci(w.avf_sdc, w.sdc_lo, w.sdc_hi) if w else '—'} | "
                     f"{_ci(*r.ratio) if w else '—'} | {_ci(j.avf_sdc, j.sdc_lo, j.sdc_hi) if j else '—'} | "
                     f"{_ci(d.avf_event, d.event_lo, d.event_hi)} |")
    lines += ["", "DUE (non-finite outputs) per sample / per event: " + "; ".join(
        f"{s} {_g(r.direct.avf_due)} / {_g(r.direct.avf_due_event)}" for s, r in result.structures.items())]
    explained = [r.explanation for r in result.structures.values() if r.explanation]
    if explained:
        lines += ["", "## Direct against the joins", ""] + [f"- {e}" for e in explained]
    basis = result.fit[0].basis if result.fit else "sample"
    lines += ["", "## FIT (raw FIT/Mbit are assumptions unless overridden; see faults/avf/fit.py)", "",
              f"Headline FIT counts {'failure events (inferences with an incorrect output)' if basis == 'event' else 'per-sample failures (sites were run on part of the batch; per-event needs --inputs-per-trial 0)'}.",
              "",
              "| structure | Mbit | FIT/Mbit | raw FIT | SDC FIT [lo, hi] | DUE FIT [lo, hi] | per-sample SDC FIT | rate source |",
              "|---|---|---|---|---|---|---|---|"]
    for f in result.fit:
        lines.append(f"| {f.structure} | {f.bits / 2**20:.4g} | {_g(f.fit_per_mbit)} | {_g(f.raw_fit)} | "
                     f"{_ci(f.sdc_fit, f.sdc_fit_lo, f.sdc_fit_hi)} | {_ci(f.due_fit, f.due_fit_lo, f.due_fit_hi)} | "
                     f"{_ci(f.sample_sdc_fit, f.sample_sdc_fit_lo, f.sample_sdc_fit_hi)} | {f.source} |")
    if layer_rows:
        lines += ["", "## Live sites by layer (direct)", "", "| structure | layer | live sites | partial | SDC rate | PVF |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['structure']} | {r['layer']} | {r['live']} | {r['partial']} | {_g(r['rate'])} | {_g(r['pvf'])} |"
                  for r in layer_rows]
    return "\n".join(lines) + "\n"


def layer_table(out_dir: Path) -> list[dict]:
    """Per (structure, layer): live direct sites, partial ones, their SDC rate, and the layer PVF."""
    pvf: dict[tuple[str, str], list[float]] = {}
    terms = out_dir / "joined_terms.csv"
    if terms.is_file():
        for r in csv.DictReader(io.StringIO(terms.read_text())):
            w = float(r["ace_bit_cycles"])
            acc = pvf.setdefault((r["structure"], r["layer"]), [0.0, 0.0])
            acc[0] += w * float(r["pvf"])
            acc[1] += w
    with AvfStore(out_dir, readonly=True) as store:
        rows = [r for r in store.rows() if r["status"] == "live"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["structure"], r["layer"]), []).append(r)
    out = []
    for (s, layer), rs in sorted(groups.items()):
        n = sum(r["n_inputs"] for r in rs)
        p = pvf.get((s, layer))
        out.append({"structure": s, "layer": layer, "live": len(rs), "partial": sum(not r["full"] for r in rs),
                    "rate": sum(r["n_sdc"] for r in rs) / n if n else float("nan"),
                    "pvf": p[0] / p[1] if p and p[1] else float("nan")})
    return out


def write_avf_report(out_dir: str | Path, report_dir: str | Path | None = None, plots: bool = True) -> dict:
    """Write the markdown and PNGs; returns {"markdown": path, "plots": [paths]}."""
    out = Path(out_dir)
    result = StudyResult.load(out)
    rep = Path(report_dir) if report_dir else out / "report"
    layers = layer_table(out)
    md = rep / "avf.md"
    write_text_atomic(md, markdown(result, layers))
    written = []
    if plots:
        written = avf_plots(out, rep, result, layers)
    return {"markdown": str(md), "plots": [str(p) for p in written]}


def write_sweep_report(out_dir: str | Path, plots: bool = True) -> dict:
    """``sweep.png`` from ``sweep.csv`` and every value's study report; returns what was written."""
    out = Path(out_dir)
    path = out / SWEEP_FILE
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for r in rows:
        for k in r:
            if k not in ("key", "value", "structure"):
                r[k] = float(r[k])
    written = {"studies": [], "plots": []}
    for folder in dict.fromkeys(f"{r['key']}={r['value']}" for r in rows):
        written["studies"].append(write_avf_report(out / folder, plots=plots)["markdown"])
    if plots and rows:
        plot_sweep(rows, out / "sweep.png")
        written["plots"].append(str(out / "sweep.png"))
    return written
