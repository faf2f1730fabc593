"""Executing a campaign: its rounds and chunks, the store, the progress bar.

:func:`faults.pvf.campaign.run_campaign` is the entry point; this module holds the machinery:

* :class:`EvaluatorFactory`: builds a worker's :class:`~faults.pvf.evaluator.TrialEvaluator`
  (the program travels as ``program_state`` where it must be pickled);
* :class:`Runner`: rounds (one for a fixed sample size; pilot and rest for adaptive
  stopping; pilot and allocation rounds for a target precision, :mod:`faults.pvf.precision`),
  the fixed chunk partition of each round, streamed (no list of every planned trial: memory
  does not grow with ``--trials``), skipping of stored chunks (one store query per chunk), one
  SQLite transaction per finished chunk, a tqdm bar on stderr with rate, ETA and the running
  SDC estimate (with ``precision``: the population estimate and its relative half-width);
* execution by :class:`faults.common.executor.ChunkExecutor` (in-process for one worker, else
  a ``fork`` multiprocessing pool, or Ray; every evaluator runs with one BLAS thread, so
  results do not depend on the worker count or backend).
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from accelsim.ir import Program

from faults.common import stats
from faults.common.executor import ChunkExecutor, ExecutorError, as_program, program_from_state, program_state
from faults.pvf.evaluator import TrialEvaluator
from faults.pvf.plan import CampaignConfig, CampaignError, Plan
from faults.pvf.precision import PrecisionRounds, relative_half_width, stratum_weights
from faults.pvf.store import TrialStore


__all__ = ["CampaignSummary", "EvaluatorFactory", "Runner", "MAX_TRIAL_INDEX",
           "program_state", "program_from_state"]  # program transport now lives in faults.common.executor

MAX_TRIAL_INDEX = 2**62  # trial indices are SQLite INTEGERs (int64); a margin keeps r * C + c exact


@dataclass
class CampaignSummary:
    out_dir: str
    trials: int
    new_trials: int
    sdc: int
    due: int
    seconds: float
    cells: int
    criterion: str

    @property
    def trials_per_second(self) -> float:
        return self.new_trials / self.seconds if self.seconds > 0 else float("nan")



# ---------------------------------------------------------------------------- evaluators
@dataclass(frozen=True)
class EvaluatorFactory:
    """Builds a campaign's :class:`TrialEvaluator` in a worker (picklable; the program travels as
    :func:`program_state` when it crosses a process boundary: :meth:`portable`)."""

    program: Any  # Program, or its program_state
    inputs: Mapping[str, np.ndarray]
    config: CampaignConfig
    criterion: str

    def __call__(self) -> TrialEvaluator:
        return TrialEvaluator(as_program(self.program), self.inputs, self.config, self.criterion)

    def portable(self) -> "EvaluatorFactory":
        if isinstance(self.program, Program):
            return dataclasses.replace(self, program=program_state(self.program))
        return self


class Runner:
    """Runs the planned trials of one campaign into its open store (module docstring)."""

    def __init__(self, program: Program, inputs: Mapping[str, np.ndarray], config: CampaignConfig,
                 criterion: str, store: TrialStore, plan: Plan, workers: int, backend: str, progress: bool,
                 on_chunk: Callable[[int], None] | None, key: str = "campaign") -> None:
        self.program, self.inputs, self.config, self.criterion = program, inputs, config, criterion
        self.store, self.plan, self.workers, self.backend = store, plan, workers, backend
        self.progress, self.on_chunk = progress, on_chunk
        self.executor: ChunkExecutor | None = None
        self.bar = None
        self.counts = np.zeros(3, dtype=np.int64)  # trials, sdc, due
        self.key = key
        self.new = 0
        self.precision: PrecisionRounds | None = None

    # -------------------------------------------------------------- rounds
    def rounds(self) -> Iterable[list[tuple[int, int]]]:
        """The campaign's rounds, each as per-cell repetition ranges ``[lo, hi)``: the round's
        trials are ``trial_index(c, r)`` for ``lo_c <= r < hi_c`` (:meth:`round_chunks` streams
        them; nothing here is per trial). A round is computed after the previous one ran."""
        C = len(self.plan.cells)
        if getattr(self.config, "precision", None) is not None:
            yield from self._precision_rounds()
            return
        if self.config.half_width is None:
            yield [(0, self.plan.planned[c]) for c in range(C)]
            return
        # two-stage design (faults.common.sequential): a pilot per cell, then each cell's total is
        # fixed from its pilot's count alone (enumerated cells run in full)
        n0 = max(self.config.round_trials, self.config.min_trials)
        pilot = [min(n0, self.plan.planned[c]) for c in range(C)]
        yield [(0, pilot[c]) for c in range(C)]
        ranges = []
        for c in range(C):
            total = self.plan.planned[c]
            if total > pilot[c] and not self.plan.enumerated(c):
                n, k = self.store.prefix_counts(c, pilot[c])
                total = stats.two_stage_total(k, n, self.config.half_width, self.plan.planned[c],
                                              self.config.confidence, self.config.method)
            ranges.append((pilot[c], max(pilot[c], total)))
        if any(hi > lo for lo, hi in ranges):
            yield ranges

    def _precision_rounds(self) -> Iterator[list[tuple[int, int]]]:
        """Pilot, then rounds allocated from the stored results of the rounds before
        (:class:`faults.pvf.precision.PrecisionRounds`); the bar's total follows the plan."""
        self.precision = PrecisionRounds(self.plan.cells, self.config, self.plan.planned)
        totals = self.precision.pilot()
        lo = [0] * len(totals)
        while totals is not None:
            if self.bar is not None:
                self.bar.total = max(int(sum(totals)), int(self.counts[0]))
                self.bar.refresh()
            yield [(a, max(a, b)) for a, b in zip(lo, totals)]
            lo = list(totals)
            counts = [self.store.prefix_counts(c, n) for c, n in enumerate(totals)]
            totals = self.precision.next_totals([n for n, _ in counts], [k for _, k in counts])

    def round_chunks(self, ranges: Sequence[tuple[int, int]]) -> Iterator[list[int]]:
        """The round's trial indices in increasing order, cut into chunks of ``chunk_size``: the
        partition of cutting the round's sorted trial list, built a block of repetitions at a
        time (trial ``r * C + c`` grows with (r, c), so row-major order is sorted order)."""
        size, C = self.config.chunk_size, len(ranges)
        if C == 0:
            return
        if getattr(self.config, "precision", None) is not None:
            yield from self._stratum_chunks(ranges)
            return
        lo = np.array([r[0] for r in ranges], dtype=np.int64)
        hi = np.array([r[1] for r in ranges], dtype=np.int64)
        cells = np.arange(C, dtype=np.int64)[None, :]
        rep, end = int(lo.min()), int(hi.max())
        block = max(1, 4 * size // C + 1)
        pending = np.empty(0, dtype=np.int64)
        while rep < end:
            reps = np.arange(rep, min(rep + block, end), dtype=np.int64)[:, None]
            trials = self.plan.trial_index(cells, reps)[(reps >= lo) & (reps < hi)]
            pending = np.concatenate([pending, trials])
            while len(pending) >= size:
                yield pending[:size].tolist()
                pending = pending[size:]
            rep += block
        if len(pending):
            yield pending.tolist()

    def _stratum_chunks(self, ranges: Sequence[tuple[int, int]]) -> Iterator[list[int]]:
        """Precision rounds: the round's trials stratum by stratum (repetitions in order), cut
        into chunks of ``chunk_size`` (each sorted): a chunk mostly holds one stratum, whose
        faults start at the same few instructions and travel stacked (fewer, larger kernel
        calls). The partition depends on the ranges alone."""
        size, C = self.config.chunk_size, len(ranges)
        pending = np.empty(0, dtype=np.int64)
        for c, (lo, hi) in enumerate(ranges):
            for start in range(int(lo), int(hi), 4096):
                reps = np.arange(start, min(start + 4096, int(hi)), dtype=np.int64)
                pending = np.concatenate([pending, reps * C + c])
                while len(pending) >= size:
                    yield sorted(pending[:size].tolist())
                    pending = pending[size:]
        if len(pending):
            yield sorted(pending.tolist())

    def _pending(self, chunks: Iterable[list[int]]) -> Iterator[list[int]]:
        """The chunks not fully stored yet (each checked against the store on its own)."""
        for chunk in chunks:
            stored = self.store.stored_between(min(chunk), max(chunk))
            if not all(t in stored for t in chunk):
                yield chunk

    def _check_indexable(self) -> None:
        """Trial indices are SQLite integers: refuse a plan whose largest index does not fit."""
        C = len(self.plan.cells)
        largest = max(((n - 1) * C + c for c, n in enumerate(self.plan.planned) if n > 0), default=0)
        if largest >= MAX_TRIAL_INDEX:
            raise CampaignError(f"{max(self.plan.planned)} trials in each of {C} strata: trial indices would "
                                f"exceed {MAX_TRIAL_INDEX} (2^62); plan fewer trials")

    def total_planned(self) -> int:
        return int(sum(self.plan.planned))

    # -------------------------------------------------------------- run
    def run(self, out_dir: str) -> CampaignSummary:
        start = time.perf_counter()
        self._check_indexable()
        existing = self.store.cell_counts()
        self.cell_counts = np.zeros((len(self.plan.cells), 2), dtype=np.int64)  # per cell: trials, sdc
        for c, (n, sdc, due) in existing.items():
            self.counts += (n, sdc, due)
            if 0 <= c < len(self.cell_counts):
                self.cell_counts[c] += (n, sdc)
        if self.progress:
            from tqdm import tqdm

            total = int(self.counts[0]) if getattr(self.config, "precision", None) is not None else self.total_planned()
            self.bar = tqdm(total=total, initial=int(self.counts[0]), unit="trial", file=sys.stderr,
                            dynamic_ncols=True, desc="pvf")
            self._postfix()
        factory = EvaluatorFactory(self.program, self.inputs, self.config, self.criterion)
        self.executor = ChunkExecutor(factory, self.workers, self.backend, key=self.key)
        try:
            for ranges in self.rounds():
                self.executor.run(self._pending(self.round_chunks(ranges)), self._record)
        except ExecutorError as exc:
            raise CampaignError(str(exc)) from exc
        finally:
            self.executor.close()
            if self.bar is not None:
                self.bar.close()
        total = self.store.count()
        counts = self.store.cell_counts()
        return CampaignSummary(
            out_dir=str(out_dir), trials=total, new_trials=self.new,
            sdc=sum(v[1] for v in counts.values()), due=sum(v[2] for v in counts.values()),
            seconds=time.perf_counter() - start, cells=len(self.plan.cells), criterion=self.criterion,
        )

    def _record(self, rows: list[dict[str, Any]]) -> None:
        written = self.store.append(rows)
        self.new += written
        n = len(rows)
        self.counts += (n, sum(r["outcome"] == 1 for r in rows), sum(r["outcome"] == 2 for r in rows))
        for r in rows:
            self.cell_counts[r["cell"]] += (1, r["outcome"] == 1)
        if self.bar is not None:
            self.bar.update(n)
            self._postfix()
        if self.on_chunk is not None:
            self.on_chunk(n)

    def _postfix(self) -> None:
        n, sdc, due = (int(v) for v in self.counts)
        if not n:
            return
        if getattr(self.config, "precision", None) is not None:
            weights = stratum_weights(self.plan.cells)
            est = stats.stratified(self.cell_counts[:, 1], self.cell_counts[:, 0], weights,
                                   self.config.confidence, self.config.method)
            rel = relative_half_width(est)
            self.bar.set_postfix_str(f"PVF {est.pvf:.3g} [{est.lo:.3g},{est.hi:.3g}] ±{100 * rel:.1f}% "
                                     f"(target ±{100 * self.config.precision:g}%)", refresh=False)
            return
        lo, hi = stats.interval(sdc, n, self.config.confidence, self.config.method)
        self.bar.set_postfix_str(f"SDC {sdc / n:.4f} [{lo:.4f},{hi:.4f}] DUE {due / n:.4f}", refresh=False)
