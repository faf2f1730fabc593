"""One AVF study of a model on one hardware config: direct + joined AVF per structure, FIT.

Writes into ``out_dir`` (every file atomically; trials go to ``avf.sqlite`` as they finish, so
an interrupted study resumes and never loses finished trials):

* ``avf.sqlite``        direct site trials (:mod:`faults.avf_store`);
* ``avf_summary.json``  configuration, per structure direct / joined AVF with intervals, FIT
  rows, the gap explanation;
* ``avf_table.csv``     one row per structure (direct and joined side by side);
* ``fit_table.csv``     SDC / DUE FIT per structure and in total (:mod:`faults.fit`);
* ``joined_terms.csv``  per (structure, parameter): ACE bit-cycles, PVF, AVF contribution;
* ``occupancy.npz``     live / dead bits over time per structure (for the report's timelines).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from faults.avf import (AvfContext, AvfError, PvfEntry, gap_explanation, joined_avf, pvf_table, run_direct, run_pvf,
                        summarize_direct)
from faults.avf_store import AvfStore
from faults.fit import fit_table, raw_rates


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(tmp, path)


def csv_text(rows: Sequence[Mapping]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def study_pvf(ctx: AvfContext, out_dir: Path, pvf_dir: str | None, pvf_trials: int, seed: int,
              by: str = "param", workers: int = 1, progress: bool = False) -> dict[str, PvfEntry]:
    """PVF per parameter: from ``pvf_dir`` if given and populated, else run the campaign there."""
    if pvf_dir:
        if not (Path(pvf_dir) / "trials.sqlite").is_file():
            raise AvfError(f"--pvf {pvf_dir}: no PVF campaign (trials.sqlite) there")
        return pvf_table(ctx, str(pvf_dir), by)
    return run_pvf(ctx, str(Path(out_dir) / "pvf"), max(pvf_trials, 1), seed, by, workers, progress)


def run_study(ctx: AvfContext, out_dir: str | Path, structures: Sequence[str], trials: int, seed: int,
              pvf: Mapping[str, PvfEntry] | None, fit_overrides: Mapping[str, float] | None = None,
              inputs_per_trial: int = 1, confidence: float = 0.95, method: str = "wilson",
              extra_config: Mapping | None = None, progress: bool = False, mode: str = "uniform") -> dict:
    """Run (or resume) the study; return the summary written to ``avf_summary.json``."""
    out = Path(out_dir)
    config = {"hardware": ctx.hw.to_dict(), "dtype": ctx.dtype, "criterion": ctx.criterion.text,
              "trials": trials, "seed": seed, "inputs_per_trial": inputs_per_trial,
              "batch": ctx.batch, "program": ctx.program.name, "mode": mode, **(extra_config or {})}
    rates = raw_rates(ctx.hw, fit_overrides)
    per: dict[str, dict] = {}
    terms = []
    with AvfStore(out, {k: v for k, v in config.items() if k != "trials"}) as store:
        for s in structures:
            bar = _bar(progress, trials, s)
            rows = run_direct(ctx, s, trials, seed, store, inputs_per_trial,
                              on_chunk=(lambda n, b=bar: b.update(n)) if bar else None, mode=mode)
            if bar:
                bar.close()
            d = summarize_direct(ctx, s, rows, confidence, method, mode)
            entry = {"direct": dataclasses.asdict(d), "bits": ctx.resolver.capacity_bits(s),
                     "capacity_bits_full": int(ctx.schedule.residency.capacity_bits[s])}
            if pvf is not None:
                j = joined_avf(ctx, s, pvf)
                entry["joined"] = {k: v for k, v in dataclasses.asdict(j).items() if k != "per_param"}
                entry["explanation"] = gap_explanation(d, j, rows)
                terms += [{"structure": s, "param": p, "layer": ctx.layer_of[p], "ace_bit_cycles": a,
                           "pvf": v, "avf_contribution": c} for p, a, v, c in j.per_param]
            per[s] = entry
    avf_for_fit = {s: {k: e["direct"][k] for k in ("avf_sdc", "sdc_lo", "sdc_hi", "avf_due", "due_lo", "due_hi")}
                   for s, e in per.items()}
    fits = fit_table(avf_for_fit, {s: e["bits"] for s, e in per.items()}, rates)
    summary = {"config": config, "total_cycles": ctx.total_cycles, "structures": per,
               "fit": [dataclasses.asdict(f) for f in fits], "confidence": confidence, "method": method}
    table = []
    for s, e in per.items():
        d, j = e["direct"], e.get("joined", {})
        table.append({"structure": s, "bits": e["bits"], "trials": d["trials"], "unrun": d["unrun"],
                      "live_fraction": d["live_fraction"], "ace_fraction": d["ace_fraction"],
                      "direct_avf": d["avf_sdc"], "direct_lo": d["sdc_lo"], "direct_hi": d["sdc_hi"],
                      "joined_avf": j.get("avf_sdc", float("nan")), "joined_lo": j.get("sdc_lo", float("nan")),
                      "joined_hi": j.get("sdc_hi", float("nan")), "direct_due": d["avf_due"],
                      "joined_due": j.get("avf_due", float("nan"))})
    write_text_atomic(out / "avf_table.csv", csv_text(table))
    write_text_atomic(out / "fit_table.csv", csv_text(summary["fit"]))
    write_text_atomic(out / "joined_terms.csv", csv_text(terms))
    occ = {}
    for s in per:
        cyc, live, dead = ctx.schedule.residency.occupancy(s, 400)
        occ[f"{s}.cycles"], occ[f"{s}.live"], occ[f"{s}.dead"] = cyc, live, dead
    buf = io.BytesIO()
    np.savez(buf, **occ)
    handle, tmp = tempfile.mkstemp(dir=out, suffix=".npz.tmp")
    with os.fdopen(handle, "wb") as stream:
        stream.write(buf.getvalue())
    os.replace(tmp, out / "occupancy.npz")
    write_text_atomic(out / "avf_summary.json", json.dumps(summary, indent=1, default=_json_default))
    return summary


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return str(x)


def _bar(progress: bool, total: int, label: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"avf {label}", unit="site", leave=False)
