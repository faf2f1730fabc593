"""Protection studies, scheme sweeps and the placement search (part of :mod:`faults.api`)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from accelsim.config import HardwareConfig

from faults.avf.context import AvfContext
from faults.protect.candidates import bank_parameter_sets, make_bank
from faults.protect.confirm import load_search, run_search
from faults.protect.predict import bit_pvf
from faults.protect.scheme import Protection, decode_cycles_of
from faults.protect.search import SearchConfig
from faults.protect.study import ProtectConfig, ProtectRow, load_rows, run_protect
from faults.protect.sweep import run_protect_sweep
from faults.api.models import InputError, Model, _check_study, hardware


def _protect_context(model: Model, inputs: Mapping[str, np.ndarray], hw: str | HardwareConfig, overrides, dtype,
                     criterion, output, nonfinite, out_dir) -> AvfContext:
    _check_study(model, inputs, 0, out_dir)
    return AvfContext(model.program, inputs, hardware(hw, overrides), dtype, criterion, output, nonfinite=nonfinite)


def protected_bank(model: Model, inputs: Mapping[str, np.ndarray], hw: str | HardwareConfig, policy: str,
                   fraction: float, *, overrides: Sequence[str] = (), dtype: str | None = None,
                   coverage: float = 1.0, pvf_dir: str | Path | None = None, pvf_trials: int = 100,
                   seed: int = 0, workers: int = 1, progress: bool = False):
    """A protected weight-SRAM bank of ``fraction`` of the SRAM holding the parameters chosen by
    ``policy`` (``component=GLOB``, ``layer=GLOB``, ``param=GLOB``, or ``vulnerable``: the
    shortest prefix, by predicted SDC contribution per byte, covering ``coverage`` of it — this
    runs the per-bit PVF campaign into ``pvf_dir``)."""
    ctx = AvfContext(model.program, inputs, hardware(hw, overrides), dtype)
    pvf = None
    if policy == "vulnerable":
        if pvf_dir is None:
            raise InputError("bank policy 'vulnerable' needs a folder for its PVF campaign (pvf_dir)")
        pvf = bit_pvf(ctx, pvf_dir, pvf_trials, seed, "component", workers, progress)
    (_, params), = bank_parameter_sets(ctx, pvf, policy, (coverage,))
    return make_bank(ctx, params, fraction)


def protect_study(model: Model, inputs: Mapping[str, np.ndarray], hw: str | HardwareConfig, protection: Protection,
                  config: ProtectConfig, out_dir: str | Path, *, overrides: Sequence[str] = (),
                  dtype: str | None = None, criterion: str | None = None, output: str | None = None,
                  nonfinite: str = "sdc", bank=None, progress: bool = False, workers: int = 1,
                  backend: str = "local") -> list[ProtectRow]:
    """Run (or resume) a protection study: upsets of ``protection.upset`` on every structure of
    ``config`` under ``protection`` (decode latency re-scheduled; ``bank`` from
    :func:`protected_bank` for a ``weight_sram.bank`` scheme); the rows of ``protect_table.csv``."""
    if protection.scheme("weight_sram.bank").code.check_bits and bank is None:
        raise InputError("a weight_sram.bank scheme needs a protected bank (--bank-policy and --bank-fraction)")
    ctx = _protect_context(model, inputs, hw, overrides, dtype, criterion, output, nonfinite, out_dir)
    plain = ctx.variant(bank=bank) if bank is not None else ctx
    decode = decode_cycles_of(protection)
    exact = plain.variant(bank=bank, decode_cycles=decode) if decode else plain
    return run_protect(exact, protection, config, out_dir, baseline_cycles=plain.total_cycles,
                       settings={"model_name": model.name}, progress=progress, workers=workers, backend=backend)


def protect_sweep(model: Model, inputs: Mapping[str, np.ndarray], hw: str | HardwareConfig, protection: Protection,
                  area: str, schemes: Sequence, config: ProtectConfig, out_dir: str | Path, *,
                  overrides: Sequence[str] = (), dtype: str | None = None, criterion: str | None = None,
                  output: str | None = None, nonfinite: str = "sdc", bank=None, progress: bool = False,
                  workers: int = 1, backend: str = "local") -> list[dict]:
    """:func:`protect_study` for each scheme of ``area`` (the rest from ``protection``); the rows of
    ``protect_sweep.csv``."""
    ctx = _protect_context(model, inputs, hw, overrides, dtype, criterion, output, nonfinite, out_dir)
    if bank is not None:
        ctx = ctx.variant(bank=bank)
    return run_protect_sweep(ctx, protection, area, schemes, config, out_dir, settings={"model_name": model.name},
                             progress=progress, workers=workers, backend=backend)


def protect_search(model: Model, inputs: Mapping[str, np.ndarray], hw: str | HardwareConfig, config: SearchConfig,
                   out_dir: str | Path, *, overrides: Sequence[str] = (), dtype: str | None = None,
                   criterion: str | None = None, output: str | None = None, nonfinite: str = "sdc",
                   pvf_dir: str | Path | None = None, workers: int = 1, backend: str = "local",
                   progress: bool = False) -> dict:
    """Placement search under ``config.budget``, confirmed by injection
    (:mod:`faults.protect.confirm`); its summary (also in ``search_summary.json``)."""
    ctx = _protect_context(model, inputs, hw, overrides, dtype, criterion, output, nonfinite, out_dir)
    return run_search(ctx, config, out_dir, pvf_dir=pvf_dir, workers=workers, backend=backend, progress=progress,
                      settings={"model_name": model.name})


def protect_results(out_dir: str | Path) -> list[ProtectRow]:
    """The rows of the protection study in ``out_dir``."""
    return load_rows(out_dir)


def search_results(out_dir: str | Path) -> dict:
    """The summary of the placement search in ``out_dir``."""
    return load_search(out_dir)
