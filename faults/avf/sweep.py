"""The same AVF study across values of one hardware parameter.

A :class:`SweepConfig` names one config key and its values (``array.dataflow=ws,os,is``,
``weight_sram.size_kib=16,32,64``, ``hbm.bandwidth_gbps=12.8,25.6``, ``array.rows=8,16,32``;
several keys changed together are not supported). Each value is one study
(:func:`faults.avf.study.run_study`) in ``OUT/KEY=VALUE/`` with its own resumable store and
report. The PVF campaign does not depend on the hardware (same model, inputs, dtype,
criterion), so it runs once (``OUT/pvf``) and every value's joined AVF reuses it. Direct trials
use the same seed for every value (common random numbers: the same (bit, cycle) draws scaled to
each structure), which makes differences between values less noisy.

Writes ``OUT/sweep.csv`` (one row per value × structure, plus a ``total`` row per value: cycles,
direct and joined AVF with intervals, SDC/DUE FIT). The plot is drawn by :mod:`faults.report`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from accelsim.config import load_config
from accelsim.ir import Program

from faults.common.files import csv_text, write_text_atomic
from faults.avf.context import AvfContext, AvfError
from faults.avf.study import StudyConfig, StudyResult, run_study, study_pvf

SWEEP_FILE = "sweep.csv"


@dataclass(frozen=True)
class SweepConfig:
    """One hardware config key and the values it takes (text, as ``--set`` would give them)."""

    key: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(str(v) for v in self.values))
        if not self.key or not self.values:
            raise AvfError(f"sweep {self.key!r}: give a key and at least one value")
        if len(set(self.values)) != len(self.values):
            raise AvfError(f"sweep {self.key}: repeated value in {list(self.values)}")
        if self.key == "precision.weight_bytes":
            raise AvfError("sweep over precision.weight_bytes changes the stored dtype (and the PVF); "
                           "run one study per dtype")

    @classmethod
    def parse(cls, text: str) -> "SweepConfig":
        """``"array.dataflow=ws,os"`` -> SweepConfig("array.dataflow", ("ws", "os"))."""
        key, sep, values = text.partition("=")
        vals = tuple(v.strip() for v in values.split(",") if v.strip())
        if not sep or not key.strip() or not vals:
            raise AvfError(f"--sweep {text!r}: use KEY=V1,V2,... (e.g. array.dataflow=ws,os,is)")
        return cls(key.strip(), vals)

    def folder(self, value: str) -> str:
        return f"{self.key}={value}"


def run_sweep(program: Program, inputs: Mapping[str, np.ndarray], preset: str, overrides: Sequence[str],
              sweep: SweepConfig, study: StudyConfig, out_dir: str | Path, *, dtype: str | None = None,
              criterion: str | None = None, output: str | None = None,
              settings: Mapping[str, Any] | None = None, progress: bool = False) -> list[dict]:
    """Run (or resume) the sweep; returns the rows of ``sweep.csv``.

    Args:
        preset, overrides: the hardware (a preset name or TOML file, and ``key=value`` overrides)
            to which each swept value is added.
        dtype, criterion, output: as for :class:`~faults.avf.context.AvfContext`.
    """
    out = Path(out_dir)
    rows: list[dict] = []
    pvf = None
    for value in sweep.values:
        hw = load_config(preset, list(overrides) + [f"{sweep.key}={value}"])
        ctx = AvfContext(program, inputs, hw, dtype, criterion, output)
        if study.join.enabled and pvf is None:
            pvf = study_pvf(ctx, study, out, progress=progress)
        result = run_study(ctx, study, out / sweep.folder(value), pvf=pvf,
                           extra_identity={"sweep": sweep.key, "value": value}, settings=settings,
                           progress=progress)
        rows += sweep_rows(sweep.key, value, result)
        write_text_atomic(out / SWEEP_FILE, csv_text(rows))
    return rows


def sweep_rows(key: str, value: str, result: StudyResult) -> list[dict]:
    """Rows of ``sweep.csv`` for one value: one per structure and a ``total``."""
    nan = float("nan")
    fits = {f.structure: f for f in result.fit}
    rows = []
    for s, r in result.structures.items():
        d, j = r.direct, r.joined
        rows.append({"key": key, "value": value, "structure": s, "total_cycles": result.total_cycles,
                     "bits": r.bits, "direct_avf": d.avf_sdc, "direct_lo": d.sdc_lo, "direct_hi": d.sdc_hi,
                     "joined_avf": j.avf_sdc if j else nan, "joined_lo": j.sdc_lo if j else nan,
                     "joined_hi": j.sdc_hi if j else nan, "sdc_fit": fits[s].sdc_fit, "due_fit": fits[s].due_fit})
    total = fits["total"]
    rows.append({"key": key, "value": value, "structure": "total", "total_cycles": result.total_cycles,
                 "bits": total.bits, "direct_avf": nan, "direct_lo": nan, "direct_hi": nan, "joined_avf": nan,
                 "joined_lo": nan, "joined_hi": nan, "sdc_fit": total.sdc_fit, "due_fit": total.due_fit})
    return rows
