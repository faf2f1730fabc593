"""Run the placement search and confirm its choice by direct injection.

:func:`run_search` does steps 1–3 of :mod:`faults.protect.search`, then re-schedules the chosen
combination exactly (its bank, its decode latencies), runs a direct protection study of it
(:func:`faults.protect.study.run_protect`, ``OUT/confirm/<placement key>``, resumable; a re-run
that chooses another placement confirms it in its own folder) and predicts the very same
upsets (same seed, same trials: strike, decode and class are identical by construction — checked,
trial by trial), and does the same for the unprotected chip (``OUT/baseline``; the predictor's
check where the chosen placement leaves little to see, and the measured FIT it saves). Per
structure and in total, :class:`Comparison` puts the predicted SDC FIT with its interval beside
the measured one and the paired difference (measured − predicted per trial, mean with a normal
interval): ``agree`` when the two intervals overlap.

Files: ``OUT/search_options.csv`` (every option predicted), ``OUT/search_combinations.csv``
(every combination: overheads, FIT, objective, feasible, pareto, chosen),
``OUT/search_confirm.csv`` (chosen and baseline) and ``OUT/search_summary.json`` (configuration, assumptions,
chosen protection as a TOML text, comparison).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from accelsim.schedule.placement import ProtectedBank

from faults.avf.context import AvfContext, AvfError
from faults.avf.fit import BITS_PER_MBIT, raw_rates
from faults.common import stats
from faults.common.files import csv_text, json_text, write_text_atomic
from faults.protect.geometry import structure_areas
from faults.protect.predict import bit_pvf, predict_trials
from faults.protect.scheme import Protection, decode_cycles_of
from faults.protect.search import LATENCY_NOTE, SearchConfig, chosen_placement, combination_rows, combine, \
    options_rows, search_options
from faults.protect.study import ProtectConfig, load_trials, run_protect, structure_trials

OPTIONS_FILE = "search_options.csv"
COMBINATIONS_FILE = "search_combinations.csv"
CONFIRM_FILE = "search_confirm.csv"
SUMMARY_FILE = "search_summary.json"
APPROXIMATIONS = (
    "options of structures other than the weight SRAM are predicted on the schedule without a bank",
    "cycle overheads of the options are added (the chosen combination's is re-simulated exactly)",
    "per-bit PVF: flips of different bits taken as independent; a partial reach scales PVF by its read share",
    "words zeroed by policy=zero are predicted masked",
    "predicted intervals cover the sampling of upsets, not the PVF table's own uncertainty",
)


@dataclass(frozen=True)
class Comparison:
    """Predicted vs measured FIT of one structure (or ``total``) under the chosen protection."""

    structure: str
    scheme: str
    trials: int
    predicted_sdc_fit: float
    predicted_sdc_fit_lo: float
    predicted_sdc_fit_hi: float
    measured_sdc_fit: float
    measured_sdc_fit_lo: float
    measured_sdc_fit_hi: float
    paired_difference_fit: float
    paired_difference_lo: float
    paired_difference_hi: float
    predicted_due_fit: float
    measured_due_fit: float
    classes_identical: bool
    agree: bool


def _compare(structure: str, scheme: str, predicted: list[dict], measured: list[dict], raw: float,
             confidence: float) -> tuple[Comparison, float]:
    """Comparison of one structure and the variance of its paired difference (FIT²)."""
    n = len(predicted)
    by_trial = {r["trial"]: r for r in measured}
    if sorted(by_trial) != [r["trial"] for r in predicted]:
        raise AvfError(f"{structure}: the confirmation holds other trials than predicted")
    identical = all(by_trial[p["trial"]]["cls"] == p["cls"] for p in predicted)
    p = np.array([r["p_sdc"] for r in predicted])
    m = np.array([by_trial[r["trial"]]["event_sdc"] for r in predicted], dtype=np.float64)
    p_lo, p_hi = stats.wilson(float(p.sum()), n, confidence)
    m_lo, m_hi = stats.wilson(float(m.sum()), n, confidence)
    d = m - p
    var = float(d.var(ddof=1)) / n if n > 1 else math.inf
    z = stats.z_value(confidence)
    due_p = sum(r["true_due"] + r["false_due"] for r in predicted) / n
    due_m = sum(by_trial[r["trial"]]["true_due"] + by_trial[r["trial"]]["false_due"]
                + by_trial[r["trial"]]["event_nonfinite_due"] for r in predicted) / n
    row = Comparison(structure, scheme, n, float(p.mean()) * raw, p_lo * raw, p_hi * raw, float(m.mean()) * raw, m_lo * raw,
                     m_hi * raw, float(d.mean()) * raw, float(d.mean() - z * math.sqrt(var)) * raw,
                     float(d.mean() + z * math.sqrt(var)) * raw, due_p * raw, due_m * raw, identical,
                     bool(p_lo <= m_hi and m_lo <= p_hi))
    return row, var * raw * raw


def _total(rows: list[Comparison], variances: list[float], confidence: float) -> Comparison:
    tot = lambda f: float(sum(getattr(r, f) for r in rows))  # noqa: E731
    half = stats.z_value(confidence) * math.sqrt(sum(variances))
    lo = (tot("predicted_sdc_fit_lo"), tot("measured_sdc_fit_lo"))
    hi = (tot("predicted_sdc_fit_hi"), tot("measured_sdc_fit_hi"))
    diff = tot("paired_difference_fit")
    return Comparison("total", "", int(tot("trials")), tot("predicted_sdc_fit"), lo[0], hi[0], tot("measured_sdc_fit"),
                      lo[1], hi[1], diff, diff - half, diff + half, tot("predicted_due_fit"), tot("measured_due_fit"),
                      all(r.classes_identical for r in rows), bool(lo[0] <= hi[1] and lo[1] <= hi[0]))


def protection_toml(protection: Protection) -> str:
    """The protection as a ``--protection`` TOML text."""
    lines = [f'upset = "{protection.upset.name}"']
    for area, scheme in protection.schemes:
        lines += ["", f"[{area}]", f'code = "{scheme.code.name}"', f"interleave = {scheme.interleave}",
                  f'policy = "{scheme.policy}"', f"latency_cycles = {scheme.latency_cycles}"]
    return "\n".join(lines) + "\n"


def confirm(ctx: AvfContext, protection: Protection, study: ProtectConfig, folder: Path, pvf, baseline_cycles: int,
            **run: Any) -> list[Comparison]:
    """Direct study of ``protection`` on ``ctx`` into ``folder`` and the prediction of the same
    upsets; one :class:`Comparison` per structure and the total."""
    measured_rows = run_protect(ctx, protection, study, folder, baseline_cycles=baseline_cycles, **run)
    rates = raw_rates(ctx.hw, dict(study.fit_per_mbit))
    comparisons, variances = [], []
    for s, m in zip(study.structures, measured_rows):
        areas = structure_areas(ctx, s, protection)
        n = structure_trials(study, s)
        predicted = predict_trials(ctx, areas, protection.upset, s, range(n), study.seed, pvf)
        raw = rates[s][0] * sum(a.data_bits + a.check_bits for a in areas) / BITS_PER_MBIT
        row, var = _compare(s, m.scheme, predicted, load_trials(folder, s, n), raw, study.confidence)
        comparisons.append(row)
        variances.append(var)
    comparisons.append(_total(comparisons, variances, study.confidence))
    return comparisons


def placement_key(protection: Protection, bank_choice) -> str:
    """A short name of a chosen placement (its schemes and the bank's parameters and size): the
    folder its confirmation is stored in, so a re-run that chooses otherwise (more upsets, another
    budget, a changed predictor) confirms its own choice beside the earlier ones."""
    bank = "" if not bank_choice else f"{sorted(bank_choice[0])}|{bank_choice[1]}"
    return hashlib.sha256(f"{protection.name}|{bank}".encode()).hexdigest()[:12]


def run_search(ctx: AvfContext, config: SearchConfig, out_dir: str | Path, *, pvf_dir: str | Path | None = None,
               workers: int = 1, backend: str = "local", progress: bool = False,
               settings: Mapping[str, Any] | None = None) -> dict:
    """Search, choose, confirm (module docstring); the summary written to ``SUMMARY_FILE``."""
    out = Path(out_dir)
    say = print if progress else (lambda *_: None)
    say("per-bit PVF campaign ...")
    pvf = bit_pvf(ctx, pvf_dir or out / "pvf", config.pvf_trials, config.seed, config.pvf_by, workers, progress)
    options = search_options(ctx, pvf, config, lambda text: say(f"predict {text}"))
    write_text_atomic(out / OPTIONS_FILE, csv_text(options_rows(options)))
    combos = combine(options, ctx.total_cycles, config)
    write_text_atomic(out / COMBINATIONS_FILE, csv_text(combination_rows(options, combos)))
    protection, bank_choice, picked = chosen_placement(options, combos, config.upset)
    bank = ProtectedBank(bank_choice[0], bank_choice[1]) if bank_choice else None
    exact = ctx.variant(bank=bank, decode_cycles=decode_cycles_of(protection)) if bank or protection.schemes else ctx
    study = ProtectConfig(structures=config.structures, trials=config.confirm_trials, seed=config.seed,
                          scrub_interval=config.scrub_interval, confidence=config.confidence,
                          fit_per_mbit=config.fit_per_mbit, trials_for=config.confirm_trials_for)
    run = dict(settings=settings, progress=progress, workers=workers, backend=backend)
    say(f"confirm {protection.name} by injection ...")
    confirm_dir = out / "confirm" / placement_key(protection, bank_choice)
    comparisons = confirm(exact, protection, study, confirm_dir, pvf, ctx.total_cycles, **run)
    baseline = []
    if config.confirm_baseline:
        say("confirm the unprotected baseline by injection ...")
        baseline = confirm(ctx, Protection((), config.upset), study, out / "baseline", pvf, ctx.total_cycles, **run)
    write_text_atomic(out / CONFIRM_FILE, csv_text([{"placement": name, **dataclasses.asdict(c)}
                                                    for name, rows in (("chosen", comparisons), ("baseline", baseline))
                                                    for c in rows]))
    chosen = combination_rows(options, combos)[combos.chosen]
    summary = {
        "config": {"structures": list(config.structures), "upset": config.upset.name, "trials": config.trials,
                   "confirm_trials": config.confirm_trials, "trials_for": dict(config.trials_for),
                   "confirm_trials_for": dict(config.confirm_trials_for), "seed": config.seed, "pvf_trials": config.pvf_trials,
                   "pvf_by": config.pvf_by, "budget": config.budget.text, "due_weight": config.due_weight,
                   "bank_policy": config.bank_policy, "bank_scheme": config.bank_scheme.name,
                   "bank_fractions": list(config.bank_fractions), "bank_coverages": list(config.bank_coverages),
                   "confidence": config.confidence, "scrub_interval": config.scrub_interval},
        "pvf_dir": str(pvf_dir or out / "pvf"), "confirm_dir": str(confirm_dir), "baseline_cycles": ctx.total_cycles,
        "chosen_cycles": exact.total_cycles, "chosen_cycle_overhead": exact.total_cycles / ctx.total_cycles - 1.0,
        "assumptions": [LATENCY_NOTE, *APPROXIMATIONS], "chosen": chosen,
        "chosen_options": [o.row() for o in picked], "protection": protection.name,
        "protection_toml": protection_toml(protection), "combinations": int(combos.index.shape[0]),
        "feasible": int(combos.feasible.sum()), "comparison": [dataclasses.asdict(c) for c in comparisons],
        "baseline_comparison": [dataclasses.asdict(c) for c in baseline],
        **({"settings": dict(settings)} if settings else {}),
    }
    write_text_atomic(out / SUMMARY_FILE, json_text(summary))
    return summary


def load_search(out_dir: str | Path) -> dict:
    """The summary of the search in ``out_dir``."""
    path = Path(out_dir) / SUMMARY_FILE
    if not path.is_file():
        raise AvfError(f"{out_dir}: no placement search ({SUMMARY_FILE}) there")
    return json.loads(path.read_text())
