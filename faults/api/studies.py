"""PVF campaigns, AVF studies and sweeps, and the reports of any results folder (part of
:mod:`faults.api`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from accelsim.config import HardwareConfig

from faults.common.files import check_output_dir
from faults.pvf.campaign import run_campaign
from faults.pvf.plan import BACKENDS, CampaignConfig, CampaignError
from faults.pvf.results import CampaignResults
from faults.avf.context import AvfContext
from faults.avf.store import AvfStore
from faults.avf.study import StudyConfig, StudyResult, run_study, study_pvf
from faults.avf.sweep import SweepConfig, run_sweep
from faults.report.avf_report import write_avf_report, write_sweep_report
from faults.report.protect_report import is_protect_folder, write_protect_report
from faults.report.pvf_report import write_report
from faults.api.models import InputError, Model, _check_study, hardware


def pvf_campaign(model: Model, inputs: Mapping[str, np.ndarray], config: CampaignConfig,
                 out_dir: str | Path, *, workers: int | None = None, backend: str = "local",
                 progress: bool = False, golden_budget_gib: float | None = None) -> CampaignResults:
    """Run (or resume) a PVF campaign into ``out_dir``; its results (``last_run``: what this
    call ran: new trials, seconds, totals). ``golden_budget_gib``: golden activations each
    worker keeps (default 1.5; ``float('inf')`` = all); the rest is recomputed bit for bit, so
    it changes the speed and memory, never a result.

    Time to answer: ``CampaignConfig(precision=0.10)`` runs until ``results.population()`` (the
    bits-weighted population PVF) has a relative half-width of at most 10%, with the fewest
    trials (hot-bit strata per layer + one rest stratum, pilot, allocation rounds:
    :mod:`faults.pvf.precision`); ``trials`` caps a stratum; ``chunk_size=256`` (the command's
    default there) lets a stratum's faults travel stacked in larger batches."""
    if golden_budget_gib is not None:
        if not golden_budget_gib >= 0:
            raise CampaignError(f"golden budget must be >= 0 GiB, got {golden_budget_gib}")
        os.environ["ACCELSIM_GOLDEN_BUDGET_GIB"] = repr(float(golden_budget_gib))  # read by the workers
    _check_study(model, inputs, config.inputs_per_trial, out_dir)
    summary = run_campaign(model.program, inputs, config, str(out_dir), workers=workers, backend=backend,
                           progress=progress, model_id=model.model_id, model_name=model.name)
    results = CampaignResults(out_dir)
    results.last_run = summary
    return results


def pvf_results(out_dir: str | Path, criterion: str | None = None, nonfinite: str | None = None) -> CampaignResults:
    """The results of the campaign in ``out_dir`` (``criterion`` / ``nonfinite`` policy re-applied if given)."""
    return CampaignResults(out_dir, criterion, nonfinite)


def avf_study(model: Model, inputs: Mapping[str, np.ndarray], hw: str | HardwareConfig, config: StudyConfig,
              out_dir: str | Path, *, overrides: Sequence[str] = (), dtype: str | None = None,
              criterion: str | None = None, output: str | None = None, nonfinite: str = "sdc",
              workers: int = 1, progress: bool = False, backend: str = "local") -> StudyResult:
    """Run (or resume) an AVF study of one inference of ``inputs`` on ``hw``; its result.

    ``dtype`` defaults to the config's ``precision.weight_bytes``; ``workers`` runs the direct
    trials (on local processes, or on Ray with ``backend="ray"``: the same stored rows either
    way) and the PVF campaign of the joined estimate (local processes).
    """
    _check_study(model, inputs, config.inputs_per_trial, out_dir)
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose local or ray")
    ctx = AvfContext(model.program, inputs, hardware(hw, overrides), dtype, criterion, output, nonfinite=nonfinite)
    pvf = study_pvf(ctx, config, out_dir, workers=workers, progress=progress)
    return run_study(ctx, config, out_dir, pvf=pvf, settings={"model_name": model.name}, progress=progress,
                     workers=workers, backend=backend)


def avf_sweep(model: Model, inputs: Mapping[str, np.ndarray], hw: str, sweep: SweepConfig, config: StudyConfig,
              out_dir: str | Path, *, overrides: Sequence[str] = (), dtype: str | None = None,
              criterion: str | None = None, output: str | None = None, nonfinite: str = "sdc",
              progress: bool = False):
    """The study of :func:`avf_study` for each value of one config key; a pandas DataFrame of
    ``sweep.csv`` (one row per value × structure, and a total per value)."""
    import pandas as pd

    _check_study(model, inputs, config.inputs_per_trial, out_dir)
    rows = run_sweep(model.program, inputs, hw, overrides, sweep, config, out_dir, dtype=dtype,
                     criterion=criterion, output=output, nonfinite=nonfinite, settings={"model_name": model.name},
                     progress=progress)
    return pd.DataFrame(rows)


def avf_results(out_dir: str | Path) -> StudyResult:
    """The result of the AVF study in ``out_dir``."""
    return StudyResult.load(out_dir)


def avf_sites(out_dir: str | Path):
    """pandas DataFrame: every direct site trial of the study in ``out_dir``."""
    import pandas as pd

    with AvfStore(out_dir, readonly=True) as store:
        return pd.DataFrame(store.rows())


def report(out_dir: str | Path, *, criterion: str | None = None, confidence: float | None = None,
           method: str | None = None, report_dir: str | Path | None = None, plots: bool = True,
           nonfinite: str | None = None) -> dict:
    """Write the report of a PVF campaign, AVF study, sweep or protection folder; what was written,
    by kind (``pvf``, ``avf``, ``sweep``, ``protect``). ``criterion`` / ``nonfinite`` (sdc, due, apart) re-apply
    another criterion / policy for NaN/Inf outputs to a PVF campaign."""
    folder = Path(out_dir)
    written: dict[str, dict] = {}
    if (folder / "trials.sqlite").is_file() or (folder / "avf_summary.json").is_file():
        check_output_dir(report_dir if report_dir is not None else folder / "report", "report folder")
    if (folder / "sweep.csv").is_file():
        check_output_dir(folder, "sweep folder")
    if (folder / "trials.sqlite").is_file():
        written["pvf"] = write_report(folder, criterion=criterion, confidence=confidence, method=method,
                                      report_dir=report_dir, plots=plots, nonfinite=nonfinite)
    if (folder / "avf_summary.json").is_file():
        written["avf"] = write_avf_report(folder, report_dir=report_dir, plots=plots)
    if (folder / "sweep.csv").is_file():
        written["sweep"] = write_sweep_report(folder, plots=plots)
    if is_protect_folder(folder):
        check_output_dir(report_dir if report_dir is not None else folder / "report", "report folder")
        written["protect"] = write_protect_report(folder, report_dir=report_dir, plots=plots)
    if not written:
        raise InputError(f"{out_dir}: neither a PVF campaign (trials.sqlite), an AVF study (avf_summary.json), "
                         "a sweep (sweep.csv) nor a protection study, sweep or search (protect_summary.json, "
                         "protect_sweep.csv, search_summary.json)")
    return written
