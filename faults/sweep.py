"""The same AVF study across values of one hardware parameter.

``--sweep KEY=v1,v2,...`` with any config key (``array.dataflow=ws,os,is``,
``weight_sram.size_kib=16,32,64``, ``hbm.bandwidth_gbps=12.8,25.6``, ``array.rows=8,16,32``;
several keys changed together are not supported). Each value is one study
(:func:`faults.study.run_study`) in ``OUT/KEY=VALUE/`` with its own resumable store and
report. The PVF campaign does not depend on the hardware (same model, inputs, dtype, criterion),
so it runs once (``OUT/pvf``) and every value's joined AVF reuses it. Direct trials use the same
seed for every value (common random numbers: the same (bit, cycle) draws scaled to each
structure), which makes differences between values less noisy.

Writes ``OUT/sweep.csv`` (one row per value × structure: cycles, direct and joined AVF with
intervals, SDC/DUE FIT) and ``OUT/sweep.png`` (AVF and SDC FIT vs the parameter).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from accelsim.config import load_config
from accelsim.ir import Program

from faults.avf import AvfContext, AvfError
from faults.study import csv_text, run_study, study_pvf, write_text_atomic


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """``"array.dataflow=ws,os"`` -> ("array.dataflow", ["ws", "os"])."""
    key, sep, values = text.partition("=")
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or not vals:
        raise AvfError(f"--sweep {text!r}: use KEY=V1,V2,... (e.g. array.dataflow=ws,os,is)")
    if key.strip() == "precision.weight_bytes":
        raise AvfError("--sweep precision.weight_bytes changes the stored dtype (and the PVF); run one study per --dtype")
    return key.strip(), vals


def run_sweep(program: Program, inputs: Mapping[str, np.ndarray], preset: str, overrides: Sequence[str],
              key: str, values: Sequence[str], structures: Sequence[str], trials: int, seed: int,
              out_dir: str | Path, dtype: str | None = None, criterion: str | None = None,
              pvf_trials: int = 200, pvf_dir: str | None = None, joined: bool = True,
              fit_overrides: Mapping[str, float] | None = None, inputs_per_trial: int = 1,
              confidence: float = 0.95, method: str = "wilson", progress: bool = False,
              mode: str = "uniform", pvf_by: str = "param") -> list[dict]:
    """Run the sweep; returns the rows of ``sweep.csv``."""
    out = Path(out_dir)
    rows: list[dict] = []
    pvf = None
    for value in values:
        hw = load_config(preset, list(overrides) + [f"{key}={value}"])
        ctx = AvfContext(program, inputs, hw, dtype, criterion)
        if joined and pvf is None:
            pvf = study_pvf(ctx, out, pvf_dir, pvf_trials, seed, by=pvf_by, progress=progress)
        summary = run_study(ctx, out / f"{key}={value}", structures, trials, seed, pvf if joined else None,
                            fit_overrides, inputs_per_trial, confidence, method,
                            extra_config={"sweep": key, "value": value}, progress=progress, mode=mode)
        fits = {f["structure"]: f for f in summary["fit"]}
        for s, e in summary["structures"].items():
            d, j = e["direct"], e.get("joined", {})
            rows.append({"key": key, "value": value, "structure": s, "total_cycles": summary["total_cycles"],
                         "bits": e["bits"], "direct_avf": d["avf_sdc"], "direct_lo": d["sdc_lo"],
                         "direct_hi": d["sdc_hi"], "joined_avf": j.get("avf_sdc", float("nan")),
                         "joined_lo": j.get("sdc_lo", float("nan")), "joined_hi": j.get("sdc_hi", float("nan")),
                         "sdc_fit": fits[s]["sdc_fit"], "due_fit": fits[s]["due_fit"]})
        rows.append({"key": key, "value": value, "structure": "total", "total_cycles": summary["total_cycles"],
                     "bits": fits["total"]["bits"], "direct_avf": float("nan"), "direct_lo": float("nan"),
                     "direct_hi": float("nan"), "joined_avf": float("nan"), "joined_lo": float("nan"),
                     "joined_hi": float("nan"), "sdc_fit": fits["total"]["sdc_fit"],
                     "due_fit": fits["total"]["due_fit"]})
        write_text_atomic(out / "sweep.csv", csv_text(rows))
    plot_sweep(rows, out / "sweep.png")
    return rows


def plot_sweep(rows: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    key = rows[0]["key"]
    values = list(dict.fromkeys(r["value"] for r in rows))
    structures = [s for s in dict.fromkeys(r["structure"] for r in rows) if s != "total"]
    x = np.arange(len(values))
    pos = [v for r in rows for v in (r["direct_avf"], r["direct_hi"], r["joined_avf"]) if v == v and v > 0]
    floor = min(pos) / 10 if pos else 1e-9  # zero estimates are drawn at this floor (log axis)
    fpos = [r["sdc_fit"] for r in rows if r["sdc_fit"] > 0]
    ffloor = min(fpos) / 10 if fpos else 1e-9
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for s in structures:
        sel = [next(r for r in rows if r["value"] == v and r["structure"] == s) for v in values]
        y = np.array([r["direct_avf"] for r in sel])
        lo, hi = np.array([r["direct_lo"] for r in sel]), np.array([r["direct_hi"] for r in sel])
        yy = np.maximum(y, floor)
        line = a1.errorbar(x, yy, yerr=[np.maximum(yy - np.maximum(lo, floor), 0), np.maximum(hi - yy, 0)],
                           capsize=3, marker="o", label=f"{s} direct")
        jy = np.array([r["joined_avf"] for r in sel])
        if np.isfinite(jy).any():
            a1.plot(x, np.maximum(jy, floor), ls="--", marker="x", color=line[0].get_color(), label=f"{s} joined")
        a2.plot(x, [max(r["sdc_fit"], ffloor) for r in sel], marker="o", label=s)
    tot = [next(r for r in rows if r["value"] == v and r["structure"] == "total") for v in values]
    a2.plot(x, [max(r["sdc_fit"], ffloor) for r in tot], marker="s", color="k", label="total")
    a1.set_title("zero estimates drawn at the axis floor", fontsize=8)
    for ax, label in ((a1, "SDC AVF"), (a2, "SDC FIT")):
        ax.set_xticks(x, values)
        ax.set_xlabel(key)
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
