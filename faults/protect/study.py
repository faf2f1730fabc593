"""One protection study: upsets under the chosen schemes, per structure, with FIT and overheads.

For each structure, ``trials`` upsets are drawn over its physical cells — data and check bits
of every area (:mod:`faults.protect.geometry`) — and classified (:mod:`faults.protect.evaluate`);
each is judged on the whole batch (an event: the inference has an incorrect output) or on
``inputs_per_trial`` samples. Rates are per upset with Wilson / Clopper–Pearson intervals (the
upset is the sampling unit); FIT = rate × raw FIT/Mbit × physical Mbit (check bits included):

* ``sdc_fit`` — the upset made an output incorrect (silently, or after zeroing a word);
* ``true_due_fit`` / ``false_due_fit`` — detected on a read of data that would / would not have
  been consumed (``due_fit`` is their sum, plus non-finite outputs when ``nonfinite="due"``);
* ``double_upset_fit`` — an analytic second-order term for structures that keep their words
  between inferences (HBM, ``scrub_interval`` inferences between scrubs): two independent
  upsets in one codeword within a scrub period, ``N_words · λ_word² · τ / 2`` (λ_word = the raw
  rate of one codeword, τ the scrub period), counted as failures — the accumulation a scrubbed
  single-error-correcting code is protected against and an unscrubbed one is not.

Overheads: ``check_bit_overhead`` = check bits ÷ data bits of the structure; ``cycle_overhead``
= the slowdown of the inference from the schemes' decode latency (re-simulated).
Everything goes into ``OUT/protect.sqlite`` as it finishes (resumable), then
``OUT/protect_summary.json`` and ``OUT/protect_table.csv``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from faults.avf.context import AvfContext, AvfError
from faults.avf.direct import local_executor
from faults.avf.fit import BITS_PER_MBIT, DEFAULT_FIT_PER_MBIT, raw_rates
from faults.common import stats
from faults.common.files import csv_text, json_text, write_text_atomic
from faults.protect.evaluate import evaluate_trials
from faults.protect.geometry import structure_areas
from faults.protect.scheme import STRUCTURES, Protection
from faults.protect.store import ProtectStore

SUMMARY_FILE = "protect_summary.json"
TABLE_FILE = "protect_table.csv"


@dataclass(frozen=True)
class ProtectConfig:
    """A protection study's trials (validated on construction): ``trials`` upsets per structure,
    ``trials_for`` overrides per structure (e.g. more where few cells are live)."""

    structures: tuple[str, ...] = ("weight_sram", "hbm", "pe")
    trials: int = 1000
    seed: int = 0
    inputs_per_trial: int = 0
    scrub_interval: int = 1
    confidence: float = 0.95
    method: str = "wilson"
    fit_per_mbit: tuple[tuple[str, float], ...] = ()
    chunk_size: int = 64
    trials_for: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "structures", tuple(self.structures))
        object.__setattr__(self, "fit_per_mbit", tuple((str(s), float(r)) for s, r in self.fit_per_mbit))
        object.__setattr__(self, "trials_for", tuple((str(s), int(n)) for s, n in self.trials_for))
        check_trials_for(self.trials_for, self.structures)
        if not self.structures or any(s not in STRUCTURES for s in self.structures) \
                or len(set(self.structures)) != len(self.structures):
            raise AvfError(f"structures {list(self.structures)}: each of {', '.join(STRUCTURES)} at most once")
        for name in ("trials", "chunk_size", "scrub_interval"):
            if getattr(self, name) < 1:
                raise AvfError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0 or self.inputs_per_trial < 0:
            raise AvfError("seed and inputs_per_trial must be >= 0")
        stats.method_name(self.method)
        if not 0 < self.confidence < 1:
            raise AvfError(f"confidence must be in (0, 1), got {self.confidence}")
        for s, rate in self.fit_per_mbit:
            if s not in DEFAULT_FIT_PER_MBIT or not rate >= 0:
                raise AvfError(f"fit_per_mbit {s}={rate}: structure in {', '.join(DEFAULT_FIT_PER_MBIT)}, rate >= 0")


def check_trials_for(trials_for, structures) -> None:
    """One-line error unless every override names a studied structure once, with >= 1 trial."""
    names = [s for s, _ in trials_for]
    for s, n in trials_for:
        if s not in structures or names.count(s) > 1 or n < 1:
            raise AvfError(f"trials for {s}={n}: a studied structure ({', '.join(structures)}), once, >= 1 trial")


def structure_trials(config, structure: str) -> int:
    """Upsets of ``structure``: its override in ``trials_for``, else ``trials``."""
    return dict(config.trials_for).get(structure, config.trials)


@dataclass(frozen=True)
class ProtectRow:
    """FIT and overheads of one structure (or ``total``) under its scheme."""

    structure: str
    scheme: str
    data_bits: int
    check_bits: int
    check_bit_overhead: float
    cycle_overhead: float
    trials: int
    sdc: int
    true_due: int
    false_due: int
    fit_per_mbit: float
    raw_fit: float
    sdc_fit: float
    sdc_fit_lo: float
    sdc_fit_hi: float
    due_fit: float
    due_fit_lo: float
    due_fit_hi: float
    true_due_fit: float
    false_due_fit: float
    double_upset_fit: float


def _rows(ctx: AvfContext, structure: str, n: int, batch: int, seed: int, inputs_per_trial: int) -> np.ndarray:
    if inputs_per_trial <= 0 or inputs_per_trial >= batch:
        return np.arange(batch)
    rng = np.random.default_rng([seed, 7, len(structure)])
    return np.sort(rng.choice(batch, size=inputs_per_trial, replace=False))


class ProtectEvaluator:
    """Worker side: evaluates chunks ``(structure, trials)`` of upsets on one context
    (:func:`faults.protect.evaluate.evaluate_trials`; the areas of each structure cached)."""

    def __init__(self, ctx: AvfContext, protection: Protection, seed: int, samples: np.ndarray) -> None:
        self.ctx, self.protection, self.seed, self.samples = ctx, protection, seed, samples
        self.areas: dict[str, tuple] = {}

    def run_chunk(self, chunk: tuple) -> list[dict]:
        structure, trials = chunk
        if structure not in self.areas:
            self.areas[structure] = structure_areas(self.ctx, structure, self.protection)
        return evaluate_trials(self.ctx, self.areas[structure], self.protection.upset, structure, list(trials),
                               self.seed, self.samples)


def run_protect(ctx: AvfContext, protection: Protection, config: ProtectConfig, out_dir: str | Path, *,
                baseline_cycles: int | None = None, settings: Mapping[str, Any] | None = None,
                progress: bool = False, workers: int = 1, backend: str = "local") -> list[ProtectRow]:
    """Run (or resume) the study; write and return its rows (one per structure and ``total``).

    ``baseline_cycles``: the inference's cycles without decode latency (for ``cycle_overhead``).
    Upsets are evaluated in fixed chunks of ``chunk_size`` here, on ``workers`` local processes
    or on Ray (``backend``; :mod:`faults.common.executor`): the rows do not depend on where.
    """
    out = Path(out_dir)
    identity = {"hardware": ctx.hw.to_dict(), "dtype": ctx.dtype, "criterion": ctx.criterion.text,
                "nonfinite": ctx.nonfinite, "program": ctx.program_fingerprint, "inputs": ctx.inputs_fingerprint,
                "batch": ctx.batch, "bank": None if ctx.bank is None else {
                    "params": sorted(ctx.bank.params), "weight_sram_bytes": ctx.bank.weight_sram_bytes,
                    "hbm": ctx.bank.hbm},
                "protection": protection.name, "seed": config.seed, "inputs_per_trial": config.inputs_per_trial,
                "chunk_size": config.chunk_size, "decode_cycles": ctx.decode_cycles}
    rates = raw_rates(ctx.hw, dict(config.fit_per_mbit))
    samples = np.asarray(_rows(ctx, "", config.trials, ctx.batch, config.seed, config.inputs_per_trial))
    cycle_overhead = (ctx.total_cycles / baseline_cycles - 1.0) if baseline_cycles else 0.0
    result: list[ProtectRow] = []
    evaluator = functools.partial(ProtectEvaluator, protection=protection, seed=config.seed, samples=samples)
    with ProtectStore(out, identity, settings={"trials": config.trials, "trials_for": dict(config.trials_for),
                                               "structures": list(config.structures), **(settings or {})}) as store, \
            local_executor(ctx, workers, backend, key=f"protect:{store.meta('identity_hash')}",
                           evaluator=evaluator) as executor:
        for s in config.structures:
            done = store.done(s)
            total = structure_trials(config, s)
            bar = _bar(progress, total, s, len(done))

            def record(part: list[dict], bar=bar) -> None:
                store.append(part)
                if bar is not None:
                    bar.update(len(part))

            chunks = ((s, tuple(range(lo, min(lo + config.chunk_size, total))))
                      for lo in range(0, total, config.chunk_size)
                      if not all(t in done for t in range(lo, min(lo + config.chunk_size, total))))
            executor.run(chunks, record)
            if bar is not None:
                bar.close()
            trials = [r for r in store.rows(s) if r["trial"] < total]
            result.append(_structure_row(ctx, s, structure_areas(ctx, s, protection), trials, rates[s], config,
                                         cycle_overhead))
    result.append(_total(result, cycle_overhead))
    write_text_atomic(out / TABLE_FILE, csv_text([dataclasses.asdict(r) for r in result]))
    write_text_atomic(out / SUMMARY_FILE, json_text({"identity": identity, "rows": [dataclasses.asdict(r) for r in result],
                                                    "confidence": config.confidence, "method": config.method,
                                                    "upset": protection.upset.name}))
    return result


def _structure_row(ctx, structure, areas, trials, rate, config: ProtectConfig, cycle_overhead) -> ProtectRow:
    fit_per_mbit = rate[0]
    data = sum(a.data_bits for a in areas)
    check = sum(a.check_bits for a in areas)
    raw = fit_per_mbit * (data + check) / BITS_PER_MBIT
    n = len(trials)
    sdc = sum(r["event_sdc"] for r in trials)
    true_due = sum(r["true_due"] for r in trials)
    false_due = sum(r["false_due"] for r in trials)
    due = true_due + false_due + sum(r["event_nonfinite_due"] for r in trials)
    s_est = stats.estimate(sdc, n, config.confidence, config.method)
    d_est = stats.estimate(due, n, config.confidence, config.method)
    double = double_upset_fit(ctx, structure, areas, fit_per_mbit, config.scrub_interval)
    scheme = " + ".join(f"{a.name}={a.scheme.name}" for a in areas)
    return ProtectRow(structure, scheme, data, check, check / data if data else 0.0, cycle_overhead, n, sdc, true_due,
                      false_due, fit_per_mbit, raw, s_est.pvf * raw, s_est.lo * raw, s_est.hi * raw, d_est.pvf * raw,
                      d_est.lo * raw, d_est.hi * raw, true_due / n * raw if n else float("nan"),
                      false_due / n * raw if n else float("nan"), double)


def double_upset_fit(ctx: AvfContext, structure: str, areas, fit_per_mbit: float, scrub_interval: int) -> float:
    """Two upsets in one codeword within a scrub period (HBM; module docstring), FIT. Only for
    codes that correct (a single upset in an unprotected or parity word already counts)."""
    if structure != "hbm":
        return 0.0
    seconds = scrub_interval * ctx.total_cycles / (ctx.hw.clock_ghz * 1e9)
    tau_hours = seconds / 3600.0
    total = 0.0
    for a in areas:
        if not a.scheme.code.check_bits or a.scheme.kind == "parity":
            continue
        per_word = fit_per_mbit * a.scheme.code.code_bits / BITS_PER_MBIT / 1e9  # upsets per hour
        total += a.codewords * per_word ** 2 * tau_hours / 2.0
    return total * 1e9


def _total(rows: list[ProtectRow], cycle_overhead: float) -> ProtectRow:
    tot = lambda f: sum(getattr(r, f) for r in rows)  # noqa: E731
    data, check = tot("data_bits"), tot("check_bits")
    return ProtectRow("total", "", data, check, check / data if data else 0.0, cycle_overhead, tot("trials"),
                      tot("sdc"), tot("true_due"), tot("false_due"), float("nan"), tot("raw_fit"), tot("sdc_fit"),
                      tot("sdc_fit_lo"), tot("sdc_fit_hi"), tot("due_fit"), tot("due_fit_lo"), tot("due_fit_hi"),
                      tot("true_due_fit"), tot("false_due_fit"), tot("double_upset_fit"))


def load_rows(out_dir: str | Path) -> list[ProtectRow]:
    """The rows of the study in ``out_dir``."""
    path = Path(out_dir) / SUMMARY_FILE
    if not path.is_file():
        raise AvfError(f"{out_dir}: no protection study ({SUMMARY_FILE}) there")
    return [ProtectRow(**r) for r in json.loads(path.read_text())["rows"]]


def _bar(progress: bool, total: int, label: str, done: int):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=min(done, total), desc=f"protect {label}", unit="upset", leave=False)


def load_trials(out_dir: str | Path, structure: str, trials: int | None = None) -> list[dict]:
    """The stored trials of ``structure`` in the study in ``out_dir`` (the first ``trials``)."""
    with ProtectStore(Path(out_dir), readonly=True) as store:
        rows = store.rows(structure)
    return [r for r in rows if trials is None or r["trial"] < trials]
