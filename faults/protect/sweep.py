"""A protection study repeated for each scheme of one area (``--sweep AREA=S1|S2|...``).

Point ``i`` is the study of the base protection with ``AREA`` under scheme ``S_i``, re-scheduled
with its decode latency, in ``OUT/sweep/<i>`` (each resumable). ``OUT/protect_sweep.csv`` holds
one row per point and structure (and ``total``): the area and scheme swept, then the columns of
``protect_table.csv``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from faults.avf.context import AvfContext
from faults.common.files import csv_text, write_text_atomic
from faults.protect.scheme import Protection, SchemeError, decode_cycles_of, parse_scheme
from faults.protect.study import ProtectConfig, ProtectRow, run_protect

SWEEP_FILE = "protect_sweep.csv"


def parse_sweep(text: str) -> tuple[str, tuple]:
    """``"weight_sram=none|parity:64|secded:64,latency=1"`` -> (area, schemes), each exactly as
    given (decode latency 0 unless ``latency=C``)."""
    area, sep, rest = text.partition("=")
    specs = [s.strip() for s in rest.split("|")]
    if not sep or not all(specs) or len(specs) < 2:
        raise SchemeError(f"--sweep {text!r}: use AREA=SCHEME|SCHEME|... with at least two schemes")
    schemes = []
    for spec in specs:
        schemes.append(parse_scheme(f"{area.strip()}={spec}")[1])
    return area.strip(), tuple(schemes)


def run_protect_sweep(ctx: AvfContext, base: Protection, area: str, schemes, config: ProtectConfig,
                      out_dir: str | Path, *, settings: Mapping[str, Any] | None = None,
                      progress: bool = False, workers: int = 1, backend: str = "local") -> list[dict]:
    """Run (or resume) every point; write and return the rows of ``protect_sweep.csv``."""
    out = Path(out_dir)
    rows: list[dict] = []
    baseline = _baseline(ctx)
    for i, scheme in enumerate(schemes):
        protection = base.with_scheme(area, scheme)
        decode = decode_cycles_of(protection)
        point = ctx.variant(bank=ctx.bank, decode_cycles=decode) if decode != ctx.decode_cycles else ctx
        result: list[ProtectRow] = run_protect(point, protection, config, out / "sweep" / str(i),
                                               baseline_cycles=baseline, settings=settings, progress=progress,
                                               workers=workers, backend=backend)
        rows += [{"area": area, "swept_scheme": scheme.name, **dataclasses.asdict(r)} for r in result]
        write_text_atomic(out / SWEEP_FILE, csv_text(rows))
    return rows


def _baseline(ctx: AvfContext) -> int:
    """Cycles of the inference without decode latency (the same bank)."""
    return ctx.total_cycles if not ctx.decode_cycles else ctx.variant(bank=ctx.bank).total_cycles
