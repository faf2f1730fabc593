"""Report of a protection study, scheme sweep or placement search folder.

``write_protect_report(dir)`` writes into ``dir/report`` (or ``report_dir``) ``protect.md`` and
PNGs, for whatever the folder holds:

* a study (``protect_summary.json``): SDC / DUE FIT per structure with intervals, true and
  false DUE, overheads; ``protect_fit.png`` (FIT per structure, SDC and DUE with intervals);
* a sweep (``protect_sweep.csv``): FIT and overheads per scheme; ``protect_sweep.png`` (SDC FIT
  vs check-bit overhead);
* a search (``search_summary.json``): the chosen placement, the assumptions, the confirmation
  (predicted vs measured), the best options per structure; ``protect_pareto.png`` (objective
  vs check-bit overhead of every combination, the Pareto front, the budget, the chosen point with
  its predicted and measured interval).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from faults.common.files import write_text_atomic
from faults.report.numbers import interval as _ci, percent as _pct, sig3 as _g
from faults.report.protect_plots import plot_fit, plot_pareto, plot_sweep

STUDY_FILE, SWEEP_FILE, SEARCH_FILE = "protect_summary.json", "protect_sweep.csv", "search_summary.json"


def is_protect_folder(folder: Path) -> bool:
    return any((folder / f).is_file() for f in (STUDY_FILE, SWEEP_FILE, SEARCH_FILE))


def _read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def study_markdown(summary: dict) -> list[str]:
    conf = int(100 * summary["confidence"])
    ident = summary["identity"]
    lines = [f"## Protection study: {ident['protection']}", "",
             f"Hardware {ident['hardware'].get('name', '?')}, {ident['dtype']}, criterion {ident['criterion']}, "
             f"batch {ident['batch']}; upset model {summary['upset']}. FIT in failures per 10⁹ device-hours, "
             f"check bits included; intervals {conf}% {summary['method']} over upsets. An SDC is an inference "
             "with an incorrect output; true DUE = detected on a read of data that would have been consumed, "
             "false DUE = detected although no wrong bit would have been.", "",
             "| structure | scheme | check bits | slowdown | upsets | SDC FIT | DUE FIT | true DUE FIT | "
             "false DUE FIT | 2-upset FIT |", "|" + "---|" * 10]
    for r in summary["rows"]:
        lines.append(f"| {r['structure']} | {r['scheme'] or '—'} | {_pct(r['check_bit_overhead'])} | "
                     f"{_pct(r['cycle_overhead'])} | {r['trials']} | {_ci(r['sdc_fit'], r['sdc_fit_lo'], r['sdc_fit_hi'])}"
                     f" | {_ci(r['due_fit'], r['due_fit_lo'], r['due_fit_hi'])} | {_g(r['true_due_fit'])} | "
                     f"{_g(r['false_due_fit'])} | {_g(r['double_upset_fit'])} |")
    lines += ["", "The total's interval is the sum of the structures' bounds (conservative)."]
    return lines


def sweep_markdown(rows: list[dict]) -> list[str]:
    lines = [f"## Sweep over {rows[0]['area']}", "",
             "| scheme | structure | check bits | slowdown | SDC FIT | DUE FIT | false DUE FIT |", "|" + "---|" * 7]
    for r in rows:
        if r["structure"] == "total" or r["structure"] == r["area"].split(".")[0]:
            lines.append(f"| {r['swept_scheme']} | {r['structure']} | {_pct(r['check_bit_overhead'])} | "
                         f"{_pct(r['cycle_overhead'])} | {_ci(r['sdc_fit'], r['sdc_fit_lo'], r['sdc_fit_hi'])} | "
                         f"{_ci(r['due_fit'], r['due_fit_lo'], r['due_fit_hi'])} | {_g(r['false_due_fit'])} |")
    return lines


def search_markdown(summary: dict, options: list[dict]) -> list[str]:
    cfg, chosen = summary["config"], summary["chosen"]
    lines = [f"## Placement search (budget {cfg['budget']}, objective SDC FIT + {cfg['due_weight']:g} × DUE FIT)", "",
             f"{summary['combinations']} combinations, {summary['feasible']} within the budget; upset model "
             f"{cfg['upset']}; {cfg['trials']} predicted upsets per option, {cfg['confirm_trials']} injected per "
             f"structure to confirm; per-bit PVF from {cfg['pvf_trials']} trials per ({cfg['pvf_by']}, bit).", "",
             "**Chosen:** " + ", ".join(f"{s} = {chosen[s]}" for s in cfg["structures"])
             + f" — check bits {_pct(chosen['check_bit_overhead'])}, slowdown {_pct(summary['chosen_cycle_overhead'])}"
             f" (re-simulated), predicted SDC FIT {_g(chosen['sdc_fit'])}, DUE FIT {_g(chosen['due_fit'])}.", "",
             "### Confirmation by injection (same upsets)", "",
             "| structure | scheme | upsets | predicted SDC FIT | measured SDC FIT | paired difference | "
             "predicted DUE FIT | measured DUE FIT | classes identical | agree |", "|" + "---|" * 10]
    for c in summary["comparison"]:
        lines.append(f"| {c['structure']} | {c['scheme'] or '—'} | {c['trials']} | "
                     f"{_ci(c['predicted_sdc_fit'], c['predicted_sdc_fit_lo'], c['predicted_sdc_fit_hi'])} | "
                     f"{_ci(c['measured_sdc_fit'], c['measured_sdc_fit_lo'], c['measured_sdc_fit_hi'])} | "
                     f"{_ci(c['paired_difference_fit'], c['paired_difference_lo'], c['paired_difference_hi'])} | "
                     f"{_g(c['predicted_due_fit'])} | {_g(c['measured_due_fit'])} | {c['classes_identical']} | "
                     f"{c['agree']} |")
    if summary.get("baseline_comparison"):
        lines += ["", "Unprotected baseline, the same way (what the chosen placement saves, and a check of the "
                  "predictor where there is more to see):", "", "| structure | upsets | predicted SDC FIT | "
                  "measured SDC FIT | paired difference | classes identical | agree |", "|" + "---|" * 7]
        for c in summary["baseline_comparison"]:
            lines.append(f"| {c['structure']} | {c['trials']} | "
                         f"{_ci(c['predicted_sdc_fit'], c['predicted_sdc_fit_lo'], c['predicted_sdc_fit_hi'])} | "
                         f"{_ci(c['measured_sdc_fit'], c['measured_sdc_fit_lo'], c['measured_sdc_fit_hi'])} | "
                         f"{_ci(c['paired_difference_fit'], c['paired_difference_lo'], c['paired_difference_hi'])} | "
                         f"{c['classes_identical']} | {c['agree']} |")
    lines += ["", "Agree = the predicted and measured intervals overlap.", "", "### Options (predicted)", "",
              "| structure | option | check bits | cycles | SDC FIT | DUE FIT |", "|" + "---|" * 6]
    for o in sorted(options, key=lambda o: (o["structure"], float(o["sdc_fit"]))):
        lines.append(f"| {o['structure']} | {o['label']} | {int(o['check_bits']) / max(1, int(o['data_bits'])):.2%} | "
                     f"{o['cycles']} | {_ci(o['sdc_fit'], o['sdc_fit_lo'], o['sdc_fit_hi'])} | "
                     f"{_ci(o['due_fit'], o['due_fit_lo'], o['due_fit_hi'])} |")
    lines += ["", "Assumptions and approximations:", ""] + [f"* {a}" for a in summary["assumptions"]]
    return lines


def write_protect_report(folder: str | Path, report_dir: str | Path | None = None, plots: bool = True) -> dict:
    """Write ``protect.md`` (and PNGs) for the study / sweep / search in ``folder``; what was written."""
    folder = Path(folder)
    rep = Path(report_dir) if report_dir is not None else folder / "report"
    rep.mkdir(parents=True, exist_ok=True)
    lines, pngs = ["# Protection"], []
    if (folder / SEARCH_FILE).is_file():
        summary = json.loads((folder / SEARCH_FILE).read_text())
        options = _read_csv(folder / "search_options.csv")
        lines += [""] + search_markdown(summary, options)
        if plots:
            pngs.append(plot_pareto(rep / "protect_pareto.png", _read_csv(folder / "search_combinations.csv"), summary))
    if (folder / SWEEP_FILE).is_file():
        rows = _read_csv(folder / SWEEP_FILE)
        lines += [""] + sweep_markdown(rows)
        if plots:
            pngs.append(plot_sweep(rep / "protect_sweep.png", rows))
    if (folder / STUDY_FILE).is_file():
        summary = json.loads((folder / STUDY_FILE).read_text())
        lines += [""] + study_markdown(summary)
        if plots:
            pngs.append(plot_fit(rep / "protect_fit.png", summary["rows"]))
    if len(lines) == 1:
        raise FileNotFoundError(f"{folder}: no protection study, sweep or search there")
    lines += [""] + [f"![{p.stem}]({p.name})" for p in pngs]
    write_text_atomic(rep / "protect.md", "\n".join(lines) + "\n")
    return {"markdown": rep / "protect.md", "plots": pngs}
