"""The same AVF study across values of one hardware parameter.

A :class:`SweepConfig` names one config key and its values (``array.dataflow=ws,os,is``,
``weight_sram.size_kib=16,32,64``, ``hbm.bandwidth_gbps=12.8,25.6``, ``array.rows=8,16,32``, or
the study's scrub interval ``study.scrub_interval=1,4,16``; several keys changed together are
not supported). Each value is one study
(:func:`faults.avf.study.run_study`) in ``OUT/KEY=VALUE/`` with its own resumable store and
report. The PVF campaign does not depend on the hardware (same model, inputs, dtype,
criterion), so it runs once (``OUT/pvf``) and every value's joined AVF reuses it. Direct trials
use the same seed for every value (common random numbers: the same (bit, cycle) draws scaled to
each structure), which makes differences between values less noisy.

Writes ``OUT/sweep.csv`` (one row per value × structure, plus a ``total`` row per value: cycles,
direct and joined AVF with intervals, SDC/DUE FIT). The plot is drawn by :mod:`faults.report`.
"""
from __future__ import annotations

import dataclasses
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


STUDY_KEYS = {"study.scrub_interval": ("scrub_interval", int)}


@dataclass(frozen=True)
class SweepConfig:
    """One config key and the values it takes (text, as ``--set`` would give them): a hardware
    key, or a study key of :data:`STUDY_KEYS` (``study.scrub_interval``: inferences between HBM
    scrubs)."""

    key: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(str(v) for v in self.values))
        if not self.key or not self.values:
            raise AvfError(f"sweep {self.key!r}: give a key and at least one value")
        if len(set(self.values)) != len(self.values):
            raise AvfError(f"sweep {self.key}: repeated value in {list(self.values)}")
        if self.key.startswith("study.") and self.key not in STUDY_KEYS:
            raise AvfError(f"sweep {self.key!r}: study keys are {', '.join(STUDY_KEYS)}")
        if self.key in STUDY_KEYS:
            field_name, kind = STUDY_KEYS[self.key]
            for v in self.values:
                try:
                    kind(v)
                except ValueError:
                    raise AvfError(f"sweep {self.key}: {v!r} is not an {kind.__name__}") from None
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
              criterion: str | None = None, output: str | None = None, nonfinite: str = "sdc",
              settings: Mapping[str, Any] | None = None, progress: bool = False) -> list[dict]:
    """Run (or resume) the sweep; returns the rows of ``sweep.csv``.

    Args:
        preset, overrides: the hardware (a preset name or TOML file, and ``key=value`` overrides)
            to which each swept value is added.
        dtype, criterion, output, nonfinite: as for :class:`~faults.avf.context.AvfContext`.
    """
    out = Path(out_dir)
    rows: list[dict] = []
    pvf = None
    ctx = None
    for value in sweep.values:
        config = study
        if sweep.key in STUDY_KEYS:
            field_name, kind = STUDY_KEYS[sweep.key]
            config = dataclasses.replace(study, **{field_name: kind(value)})
            if ctx is None:
                ctx = AvfContext(program, inputs, load_config(preset, list(overrides)), dtype, criterion, output,
                                 nonfinite=nonfinite)
        else:
            hw = load_config(preset, list(overrides) + [f"{sweep.key}={value}"])
            ctx = AvfContext(program, inputs, hw, dtype, criterion, output, nonfinite=nonfinite)
        if config.join.enabled and pvf is None:
            pvf = study_pvf(ctx, config, out, progress=progress)
        result = run_study(ctx, config, out / sweep.folder(value), pvf=pvf,
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
        d, j, w = r.direct, r.joined, r.joined_rw
        rows.append({"key": key, "value": value, "structure": s, "total_cycles": result.total_cycles,
                     "bits": r.bits, "direct_avf": d.avf_sdc, "direct_lo": d.sdc_lo, "direct_hi": d.sdc_hi,
                     "event_avf": d.avf_event, "event_lo": d.event_lo, "event_hi": d.event_hi,
                     "joined_rw_avf": w.avf_sdc if w else nan, "joined_rw_lo": w.sdc_lo if w else nan,
                     "joined_rw_hi": w.sdc_hi if w else nan,
                     "joined_avf": j.avf_sdc if j else nan, "joined_lo": j.sdc_lo if j else nan,
                     "joined_hi": j.sdc_hi if j else nan, "ratio": r.ratio[0], "ratio_lo": r.ratio[1],
                     "ratio_hi": r.ratio[2], "sdc_fit": fits[s].sdc_fit, "sdc_fit_lo": fits[s].sdc_fit_lo,
                     "sdc_fit_hi": fits[s].sdc_fit_hi, "due_fit": fits[s].due_fit})
    total = fits["total"]
    rows.append({"key": key, "value": value, "structure": "total", "total_cycles": result.total_cycles,
                 "bits": total.bits, **{k: nan for k in rows[0] if k not in ("key", "value", "structure",
                                                                            "total_cycles", "bits")},
                 "sdc_fit": total.sdc_fit, "sdc_fit_lo": total.sdc_fit_lo, "sdc_fit_hi": total.sdc_fit_hi,
                 "due_fit": total.due_fit})
    return rows
