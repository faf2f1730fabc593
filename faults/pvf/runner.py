"""Executing a campaign: chunks on local worker processes or Ray, the store, the progress bar.

:func:`faults.pvf.campaign.run_campaign` is the entry point; this module holds the machinery:

* program transport (``program_state`` / ``program_from_state``: a Program's MappingProxy
  fields are not picklable) and the worker-side evaluator cache;
* :class:`Runner`: rounds (one for a fixed sample size; pilot and rest for adaptive
  stopping), the fixed chunk partition of each round, streamed (no list of every planned
  trial: memory does not grow with ``--trials``), skipping of stored chunks (one store query
  per chunk), one SQLite transaction per finished chunk, a tqdm bar on stderr with ETA and the
  running SDC estimate;
* local execution (in-process for one worker, else a ``fork`` multiprocessing pool; every
  evaluator runs with one BLAS thread so results do not depend on the worker count) and Ray
  (``ray.remote`` tasks over the same chunks; the program travels once via the object store).
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from accelsim.ir import Instruction, Parameter, Program, TensorSpec

from faults.common import stats
from faults.common.threads import limit_blas_threads, single_blas_thread
from faults.pvf.evaluator import TrialEvaluator
from faults.pvf.plan import CampaignConfig, CampaignError, Plan
from faults.pvf.store import TrialStore


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



# ---------------------------------------------------------------------------- program transport
def program_state(program: Program) -> dict[str, Any]:
    """Plain, picklable form of a Program (MappingProxy fields are not picklable)."""
    return {
        "inputs": [dataclasses.astuple(s) for s in program.inputs],
        "outputs": [dataclasses.astuple(s) for s in program.outputs],
        "parameters": [dataclasses.astuple(p) for p in program.parameters.values()],
        "parameter_values": {k: np.asarray(v) for k, v in program.parameter_values.items()},
        "constants": {k: np.asarray(v) for k, v in program.constants.items()},
        "instructions": [(i.op, i.name, i.inputs, i.outputs, dict(i.attrs)) for i in program.instructions],
        "name": program.name,
    }


def program_from_state(state: Mapping[str, Any]) -> Program:
    params = [Parameter(*t) for t in state["parameters"]]
    return Program(
        inputs=tuple(TensorSpec(*t) for t in state["inputs"]),
        outputs=tuple(TensorSpec(*t) for t in state["outputs"]),
        parameters={p.name: p for p in params},
        parameter_values={k: np.array(v) for k, v in state["parameter_values"].items()},
        constants={k: np.array(v) for k, v in state["constants"].items()},
        instructions=tuple(Instruction(op, name, ins, outs, attrs) for op, name, ins, outs, attrs in state["instructions"]),
        name=state["name"],
    )


_WORKER: dict[str, Any] = {}


def _init_worker(payload: Any) -> None:
    limit_blas_threads()
    if payload is not None:
        _WORKER["payload"] = payload
    _WORKER.pop("evaluator", None)


def _worker_evaluator() -> TrialEvaluator:
    ev = _WORKER.get("evaluator")
    if ev is None:
        program, inputs, config, criterion = _WORKER["payload"]
        if isinstance(program, dict):
            program = program_from_state(program)
        ev = TrialEvaluator(program, inputs, config, criterion)
        _WORKER["evaluator"] = ev
    return ev


def _run_chunk(chunk: Sequence[int]) -> list[dict[str, Any]]:
    return _worker_evaluator().run_chunk(chunk)


_RAY_CACHE: dict[str, TrialEvaluator] = {}


def _ray_chunk(key: str, payload: Any, chunk: Sequence[int]) -> list[dict[str, Any]]:
    ev = _RAY_CACHE.get(key)
    if ev is None:
        limit_blas_threads()
        state, inputs, config, criterion = payload
        _RAY_CACHE.clear()
        ev = TrialEvaluator(program_from_state(state), inputs, config, criterion)
        _RAY_CACHE[key] = ev
    return ev.run_chunk(chunk)



class Runner:
    """Runs the planned trials of one campaign into its open store (module docstring)."""

    def __init__(self, program: Program, inputs: Mapping[str, np.ndarray], config: CampaignConfig,
                 criterion: str, store: TrialStore, plan: Plan, workers: int, backend: str, progress: bool,
                 on_chunk: Callable[[int], None] | None, key: str = "campaign") -> None:
        self.program, self.inputs, self.config, self.criterion = program, inputs, config, criterion
        self.store, self.plan, self.workers, self.backend = store, plan, workers, backend
        self.progress, self.on_chunk = progress, on_chunk
        self.pool = None
        self.local_ev: TrialEvaluator | None = None
        self.ray_state = None
        self.bar = None
        self.counts = np.zeros(3, dtype=np.int64)  # trials, sdc, due
        self.key = key
        self.new = 0

    # -------------------------------------------------------------- rounds
    def rounds(self) -> Iterable[list[tuple[int, int]]]:
        """The campaign's rounds, each as per-cell repetition ranges ``[lo, hi)``: the round's
        trials are ``trial_index(c, r)`` for ``lo_c <= r < hi_c`` (:meth:`round_chunks` streams
        them; nothing here is per trial)."""
        C = len(self.plan.cells)
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

    def round_chunks(self, ranges: Sequence[tuple[int, int]]) -> Iterator[list[int]]:
        """The round's trial indices in increasing order, cut into chunks of ``chunk_size``: the
        partition of cutting the round's sorted trial list, built a block of repetitions at a
        time (trial ``r * C + c`` grows with (r, c), so row-major order is sorted order)."""
        size, C = self.config.chunk_size, len(ranges)
        if C == 0:
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

    def _pending(self, chunks: Iterable[list[int]]) -> Iterator[list[int]]:
        """The chunks not fully stored yet (each checked against the store on its own)."""
        for chunk in chunks:
            stored = self.store.stored_between(chunk[0], chunk[-1])
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
        for n, sdc, due in existing.values():
            self.counts += (n, sdc, due)
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total_planned(), initial=int(self.counts[0]), unit="trial",
                            file=sys.stderr, dynamic_ncols=True, desc="pvf")
            self._postfix()
        try:
            for ranges in self.rounds():
                self._execute(self._pending(self.round_chunks(ranges)))
        finally:
            if self.pool is not None:
                self.pool.terminate()
                self.pool.join()
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
        if self.bar is not None:
            self.bar.update(n)
            self._postfix()
        if self.on_chunk is not None:
            self.on_chunk(n)

    def _postfix(self) -> None:
        n, sdc, due = (int(v) for v in self.counts)
        if n:
            lo, hi = stats.interval(sdc, n, self.config.confidence, self.config.method)
            self.bar.set_postfix_str(f"SDC {sdc / n:.4f} [{lo:.4f},{hi:.4f}] DUE {due / n:.4f}", refresh=False)

    def _execute(self, chunks: Iterable[list[int]]) -> None:
        """Run a stream of chunks: in this process (one worker, or one chunk), on the pool with
        at most ``2 * workers + 2`` chunks queued, or on Ray."""
        chunks = iter(chunks)
        if self.backend == "ray":
            self._execute_ray(chunks)
            return
        head = list(itertools.islice(chunks, 2))
        if not head:
            return
        stream = itertools.chain(head, chunks)
        if self.workers == 1 or len(head) == 1:
            with single_blas_thread():
                if self.local_ev is None:
                    self.local_ev = TrialEvaluator(self.program, self.inputs, self.config, self.criterion)
                for chunk in stream:
                    self._record(self.local_ev.run_chunk(chunk))
            return
        if self.pool is None:
            self.pool = self._make_pool()
        inflight: collections.deque = collections.deque()
        for chunk in stream:
            inflight.append(self.pool.apply_async(_run_chunk, (chunk,)))
            if len(inflight) >= 2 * self.workers + 2:
                self._record(inflight.popleft().get())
        while inflight:
            self._record(inflight.popleft().get())

    def _make_pool(self):
        methods = multiprocessing.get_all_start_methods()
        payload = (self.program, self.inputs, self.config, self.criterion)
        if "fork" in methods:
            _WORKER["payload"] = payload  # inherited by the forked workers (no copy)
            ctx = multiprocessing.get_context("fork")
            return ctx.Pool(self.workers, initializer=_init_worker, initargs=(None,))
        ctx = multiprocessing.get_context("spawn")  # pragma: no cover - non-Linux
        state = (program_state(self.program), self.inputs, self.config, self.criterion)
        return ctx.Pool(self.workers, initializer=_init_worker, initargs=(state,))

    def _execute_ray(self, chunks: Iterator[list[int]]) -> None:
        try:
            import ray
        except ImportError as exc:
            raise CampaignError("--backend ray needs the optional extra: pip install 'accelsim[ray]'") from exc
        if not ray.is_initialized():
            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            env = {"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
            address = os.environ.get("RAY_ADDRESS")
            kwargs: dict[str, Any] = {"include_dashboard": False, "runtime_env": {"env_vars": env}}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=self.workers, **kwargs)
        if self.ray_state is None:
            key = self.key
            payload = (program_state(self.program), self.inputs, self.config, self.criterion)
            self.ray_state = (key, ray.put(payload), ray.remote(num_cpus=1)(_ray_chunk))
        key, ref, remote = self.ray_state
        limit = max(2, 2 * int(ray.available_resources().get("CPU", self.workers) or self.workers))
        inflight: list = []
        for chunk in itertools.chain(chunks, [None]):
            if chunk is not None:
                inflight.append(remote.remote(key, ref, chunk))
                if len(inflight) < limit:
                    continue
            while inflight and (chunk is None or len(inflight) >= limit):
                ready, inflight = ray.wait(inflight, num_returns=1)
                for obj in ready:
                    self._record(ray.get(obj))
