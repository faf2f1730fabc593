"""The README's AVF and protection tables, printed from finished study folders (no computation
beyond formatting: every number is read from the folders' summaries).

    python -m benchmarks.readme_tables avf out/avf9/dlrm_hbm_datacenter out/avf9/dlrm_tpu_v1 ...
    python -m benchmarks.readme_tables protect out/protect/dlrm out/protect/tinybert_tweets
    python -m benchmarks.readme_tables search out/protect/bundled_lenet5 out/protect/bundled_dlrm_small ...

``avf``: one row per study and structure — direct AVF per sample, the read-weighted join,
direct ÷ read-weighted, the full-PVF join, direct AVF per event and SDC FIT per event, each with
its interval. ``protect``: for each model folder (holding the ``none``, ``secded``, ``ws_sweep``,
``search_ws`` and ``search_chip`` folders of the README commands) the per-structure FIT without
and with SECDED, the weight-SRAM sweep, and each search's choice with its confirmation.
``search``: for each search folder its choice, overheads, and per structure the prediction
against injection for the chosen placement and for the unprotected chip.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from faults.report.numbers import interval, percent as _pct, sig3


def _g(x) -> str:
    return sig3(x, clamp=True)


def _ci(v, lo, hi) -> str:
    return interval(v, lo, hi, clamp=True)


def avf_rows(folders: list[str]) -> list[str]:
    lines = ["| model | preset (dtype) | structure | Mbit | direct AVF per sample | read-weighted join | "
             "direct ÷ read-weighted | full-PVF join | direct AVF per event | SDC FIT (events) |",
             "|" + "---|" * 10]
    for folder in folders:
        s = json.loads((Path(folder) / "avf_summary.json").read_text())
        cfg = s["config"]
        fit = {r["structure"]: r for r in s["fit"]}
        for name, r in s["structures"].items():
            d, rw, full, f = r["direct"], r["joined_rw"], r["joined"], fit[name]
            lines.append(f"| {cfg.get('model_name')} | {cfg['hardware']['name']} ({cfg['dtype']}) | {name} | "
                         f"{r['bits'] / 2 ** 20:.3g} | {_ci(d['avf_sdc'], d['sdc_lo'], d['sdc_hi'])} | "
                         f"{_ci(rw['avf_sdc'], rw['sdc_lo'], rw['sdc_hi'])} | {_ci(*r['ratio'])} | "
                         f"{_ci(full['avf_sdc'], full['sdc_lo'], full['sdc_hi'])} | "
                         f"{_ci(d['avf_event'], d['event_lo'], d['event_hi'])} | "
                         f"{_ci(f['sdc_fit'], f['sdc_fit_lo'], f['sdc_fit_hi'])} |")
        total = fit.get("total")
        if total:
            lines.append(f"| {cfg.get('model_name')} | {cfg['hardware']['name']} ({cfg['dtype']}) | **total** | "
                         f"{total['bits'] / 2 ** 20:.3g} | | | | | | "
                         f"{_ci(total['sdc_fit'], total['sdc_fit_lo'], total['sdc_fit_hi'])} |")
    return lines


def _table(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def protect_rows(folders: list[str]) -> list[str]:
    lines = ["Per structure, unprotected vs SECDED everywhere:", "",
             "| model | structure | SDC FIT unprotected | SDC FIT SECDED | DUE FIT SECDED | check bits | slowdown |",
             "|" + "---|" * 7]
    for folder in folders:
        model = Path(folder).name
        none = {r["structure"]: r for r in _table(Path(folder) / "none" / "protect_table.csv")}
        ecc = {r["structure"]: r for r in _table(Path(folder) / "secded" / "protect_table.csv")}
        for s, e in ecc.items():
            n = none[s]
            lines.append(f"| {model} | {s} | {_ci(n['sdc_fit'], n['sdc_fit_lo'], n['sdc_fit_hi'])} | "
                         f"{_ci(e['sdc_fit'], e['sdc_fit_lo'], e['sdc_fit_hi'])} | "
                         f"{_ci(e['due_fit'], e['due_fit_lo'], e['due_fit_hi'])} | {_pct(e['check_bit_overhead'])} | "
                         f"{_pct(e['cycle_overhead'])} |")
    lines += ["", "Weight SRAM only (200,000 upsets per scheme):", "",
              "| model | scheme | check bits | SDC FIT | DUE FIT | false DUE FIT |", "|" + "---|" * 6]
    for folder in folders:
        for r in _table(Path(folder) / "ws_sweep" / "protect_sweep.csv"):
            if r["structure"] == "weight_sram":
                lines.append(f"| {Path(folder).name} | `{r['swept_scheme']}` | {_pct(r['check_bit_overhead'])} | "
                             f"{_ci(r['sdc_fit'], r['sdc_fit_lo'], r['sdc_fit_hi'])} | "
                             f"{_ci(r['due_fit'], r['due_fit_lo'], r['due_fit_hi'])} | {_g(r['false_due_fit'])} |")
    lines += ["", "Placement searches (budget check_bits=5%, objective SDC FIT), confirmed by injection:", "",
              "| model | searched | chosen | check bits | predicted SDC FIT | measured SDC FIT | agree | "
              "unprotected: predicted | unprotected: measured | agree |", "|" + "---|" * 10]
    for folder in folders:
        for search in ("search_ws", "search_chip"):
            path = Path(folder) / search / "search_summary.json"
            if not path.is_file():
                continue
            s = json.loads(path.read_text())
            chosen = "; ".join(f"{k}: {s['chosen'][k]}" for k in s["config"]["structures"])
            c, b = s["comparison"][-1], (s.get("baseline_comparison") or [None])[-1]
            base = (f"{_ci(b['predicted_sdc_fit'], b['predicted_sdc_fit_lo'], b['predicted_sdc_fit_hi'])} | "
                    f"{_ci(b['measured_sdc_fit'], b['measured_sdc_fit_lo'], b['measured_sdc_fit_hi'])} | {b['agree']}"
                    if b else "– | – | –")
            lines.append(f"| {Path(folder).name} | {', '.join(s['config']['structures'])} | {chosen} | "
                         f"{_pct(s['chosen']['check_bit_overhead'])} | "
                         f"{_ci(c['predicted_sdc_fit'], c['predicted_sdc_fit_lo'], c['predicted_sdc_fit_hi'])} | "
                         f"{_ci(c['measured_sdc_fit'], c['measured_sdc_fit_lo'], c['measured_sdc_fit_hi'])} | "
                         f"{c['agree']} | {base} |")
    return lines


def _paired(c: dict) -> str:
    return (f"{_ci(c['predicted_sdc_fit'], c['predicted_sdc_fit_lo'], c['predicted_sdc_fit_hi'])} | "
            f"{_ci(c['measured_sdc_fit'], c['measured_sdc_fit_lo'], c['measured_sdc_fit_hi'])} | "
            f"{_ci(c['paired_difference_fit'], c['paired_difference_lo'], c['paired_difference_hi'])} | "
            f"{'yes' if c['agree'] else 'NO'}")


def search_rows(folders: list[str]) -> list[str]:
    lines = []
    for folder in folders:
        s = json.loads((Path(folder) / "search_summary.json").read_text())
        chosen = s["chosen"]
        budget = s["config"]["budget"]
        lines += [f"`{folder}` (budget {budget}; {s['combinations']} combinations): "
                  + "; ".join(f"{k} = {chosen[k]}" for k in s["config"]["structures"])
                  + f" — check bits {_pct(chosen['check_bit_overhead'])}, slowdown "
                  f"{_pct(s['chosen_cycle_overhead'])} (re-simulated)", "",
                  "| structure | chosen: predicted SDC FIT | measured | paired difference | agree | "
                  "unprotected: predicted | measured | paired difference | agree |", "|" + "---|" * 9]
        base = {c["structure"]: c for c in s.get("baseline_comparison") or []}
        for c in s["comparison"]:
            b = base.get(c["structure"])
            lines.append(f"| {c['structure']} | {_paired(c)} | {_paired(b) if b else '– | – | – | –'} |")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tables = {"avf": avf_rows, "protect": protect_rows, "search": search_rows}
    if len(argv) < 2 or argv[0] not in tables:
        print(__doc__)
        return 2
    print("\n".join(tables[argv[0]](argv[1:])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
