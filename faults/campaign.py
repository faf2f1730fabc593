"""Deterministic PVF campaigns: configuration, plan (cells, sample sizes), trial evaluation.

A campaign is a configuration (:class:`CampaignConfig`), a program and its evaluation
inputs. Its cells (strata, :mod:`faults.targets`) are numbered ``0..C-1``; trial ``t`` is
repetition ``t // C`` of cell ``t % C`` and draws everything it needs — the parameter
(weighted by bits), the fault (element, bit), the inputs — from
``numpy.random.Generator(PCG64(SeedSequence([seed, t])))``. A trial is therefore defined by
(seed, t) alone.

Trials are evaluated in chunks of ``chunk_size`` consecutive trial indices of a round; the
chunk partition depends only on the configuration, so results are bit-identical whatever
the number of workers or interruptions (faults in one chunk are stacked by the fast path,
see :mod:`faults.fastpath`). The driver appends each finished chunk to the SQLite store in
one transaction; re-running the same campaign skips stored chunks.

Execution (local processes or Ray, store, progress) lives in :mod:`faults.runner`.

Sample size per cell: ``trials``; or Leveugle et al.'s formula for ``margin`` (capped by
``trials`` if given); or adaptive (``half_width``): rounds of ``round_trials`` per active cell,
a cell stops after a round once its SDC interval half-width is <= ``half_width``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from accelsim import executor
from accelsim.ir import Program
from accelsim.storage import check_format

from faults import outcome as oc
from faults import stats
from faults.fastpath import FastInjector, Fault
from faults.models import FaultModel, draw, parse_fault, population_size
from faults.store import TrialStore
from faults.targets import Cell, labels, parse_target, plan_cells

BACKENDS = ("local", "ray")


class CampaignError(ValueError):
    """Bad campaign configuration (one line)."""


@dataclass(frozen=True)
class CampaignConfig:
    """Everything that defines a campaign's trials (stored and checked on resume)."""

    fault: str = "sbf"
    dtypes: tuple[str, ...] = ("fp32",)
    target: tuple[str, ...] = ()
    by: tuple[str, ...] = ()
    trials: int = 1000
    seed: int = 0
    criterion: str | None = None
    confidence: float = 0.95
    method: str = "wilson"
    margin: float | None = None
    half_width: float | None = None
    round_trials: int = 100
    min_trials: int = 30
    inputs_per_trial: int = 1
    chunk_size: int = 64
    weighting: str = "bits"
    output: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtypes", tuple(self.dtypes))
        object.__setattr__(self, "target", tuple(self.target))
        object.__setattr__(self, "by", tuple(self.by))
        for d in self.dtypes:
            check_format(d)
        if not self.dtypes:
            raise CampaignError("no storage dtype given")
        parse_fault(self.fault)
        parse_target(self.target or None)
        stats.method_name(self.method)
        if self.criterion is not None:
            oc.parse_criterion(self.criterion)
        if self.seed < 0:
            raise CampaignError(f"seed must be >= 0, got {self.seed}")
        if self.trials < 0 or self.chunk_size < 1 or self.round_trials < 1:
            raise CampaignError("trials must be >= 0, chunk_size and round_trials >= 1")
        if self.trials == 0 and self.margin is None:
            raise CampaignError("give a number of trials or a Leveugle margin")
        if self.half_width is not None and not 0 < self.half_width < 0.5:
            raise CampaignError(f"half-width must be in (0, 0.5), got {self.half_width}")
        if self.inputs_per_trial < 0:
            raise CampaignError("inputs_per_trial must be >= 0 (0 = all inputs)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Plan:
    cells: tuple[Cell, ...]
    planned: tuple[int, ...]  # trials per cell (cap for adaptive)
    populations: tuple[float, ...]

    def trial_index(self, cell: int, rep: int) -> int:
        return rep * len(self.cells) + cell


def make_plan(program: Program, config: CampaignConfig) -> Plan:
    model = parse_fault(config.fault)
    cells = plan_cells(program, parse_target(config.target or None), config.by, config.dtypes, model,
                       config.weighting)
    planned: list[int] = []
    pops: list[float] = []
    for cell in cells:
        pop = 0.0
        for name in cell.params:
            pop += population_size(model, program.parameters[name].size, cell.dtype, cell.bit)
        pops.append(pop)
        if config.margin is not None:
            n = stats.leveugle_sample_size(pop, config.margin, config.confidence)
            if config.trials:
                n = min(n, config.trials)
        else:
            n = config.trials
        planned.append(int(n))
    return Plan(tuple(cells), tuple(planned), tuple(pops))


def trial_rng(seed: int, trial: int) -> np.random.Generator:
    """The generator of trial ``trial`` (depends on nothing else)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(trial)])))


# ---------------------------------------------------------------------------- evaluation
class TrialEvaluator:
    """Worker-side: evaluates chunks of trials (golden caches built lazily per dtype)."""

    def __init__(self, program: Program, inputs: Mapping[str, np.ndarray], config: CampaignConfig,
                 criterion: str) -> None:
        self.program = program
        self.inputs = dict(inputs)
        self.config = config
        self.plan = make_plan(program, config)
        self.model: FaultModel = parse_fault(config.fault)
        self.criterion = oc.parse_criterion(criterion)
        self._injectors: dict[str, FastInjector] = {}
        self._labels = {name: labels(p) for name, p in program.parameters.items()}
        self._cum = [np.cumsum(c.weights) for c in self.plan.cells]

    def injector(self, dtype: str) -> FastInjector:
        inj = self._injectors.get(dtype)
        if inj is None:
            inj = FastInjector(self.program, self.inputs, dtype, self.config.output)
            self._injectors[dtype] = inj
        return inj

    def draw(self, trial: int) -> tuple[Cell, int, Fault]:
        cells = self.plan.cells
        cell = cells[trial % len(cells)]
        rep = trial // len(cells)
        rng = trial_rng(self.config.seed, trial)
        cum = self._cum[cell.index]
        j = int(min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), len(cum) - 1))
        param = cell.params[j]
        inj = self.injector(cell.dtype)
        corruption = draw(self.model, inj.stored(param), rng, bit=cell.bit)
        m = self.config.inputs_per_trial
        if m <= 0 or m >= inj.batch:
            rows = np.arange(inj.batch)
        elif m == 1:
            rows = np.array([rng.integers(inj.batch)])
        else:
            rows = np.sort(rng.choice(inj.batch, size=m, replace=False))
        return cell, rep, Fault(param, corruption, rows)

    def run_chunk(self, trials: Sequence[int]) -> list[dict[str, Any]]:
        drawn = [self.draw(t) for t in trials]
        by_dtype: dict[str, list[int]] = {}
        for k, (cell, _, _) in enumerate(drawn):
            by_dtype.setdefault(cell.dtype, []).append(k)
        results: list[Any] = [None] * len(drawn)
        for dtype, members in by_dtype.items():
            inj = self.injector(dtype)
            outs = inj.evaluate([drawn[k][2] for k in members])
            for k, res in zip(members, outs):
                results[k] = res
        # one vectorised comparison per dtype for the whole chunk
        records: list[np.ndarray | None] = [None] * len(drawn)
        for dtype, members in by_dtype.items():
            inj = self.injector(dtype)
            rows_all = np.concatenate([drawn[k][2].rows for k in members])
            golden = inj.golden_output[rows_all]
            faulty = np.concatenate([results[k].output for k in members])
            rec_all = oc.compare(golden, faulty, rows_all, probability=inj.probability_output)
            offset = 0
            for k in members:
                size = drawn[k][2].rows.size
                records[k] = rec_all[offset:offset + size]
                offset += size
        rec_cat = np.concatenate(records)
        bounds = np.concatenate([[0], np.cumsum([r.size for r in records])])
        outcomes_all = self.criterion.outcomes(rec_cat)
        summaries = oc.summarize_many(rec_cat, bounds)
        rows = []
        for i, (t, (cell, rep, fault), res) in enumerate(zip(trials, drawn, results)):
            inj = self.injector(cell.dtype)
            outcomes = outcomes_all[bounds[i]:bounds[i + 1]]
            lab = self._labels[fault.param]
            c = fault.corruption
            new, old = inj._new_values(fault)
            row = {
                "trial": int(t), "cell": cell.index, "rep": int(rep), "dtype": cell.dtype,
                "param": fault.param, "layer": lab["layer"], "component": lab["component"],
                "grp": lab["group"], "role": lab["role"], "element": int(c.index[0]),
                "n_elements": int(c.index.size), "bit": int(c.bit), "nflips": int(c.nflips),
                "old_value": float(old[0]), "new_value": float(new[0]), "start_op": res.start,
                "early_masked": int(res.early_masked),
                "n_sdc": int(np.count_nonzero(outcomes == oc.SDC)),
                "n_due": int(np.count_nonzero(outcomes == oc.DUE)),
                "outcome": int(outcomes.max()) if outcomes.size else 0,
                # only inputs whose output changed: an unchanged input is masked under any criterion
                "records": _changed(records[i]).tobytes(),
            }
            row.update(summaries[i])
            rows.append(row)
        return rows


def _changed(rec: np.ndarray) -> np.ndarray:
    return rec[(rec["dev"] != 0) | rec["nonfinite"]]


# ---------------------------------------------------------------------------- driver
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


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


def fingerprint_inputs(inputs: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(inputs):
        arr = np.ascontiguousarray(inputs[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def fingerprint_program(program: Program) -> str:
    h = hashlib.sha256()
    for name, value in program.parameter_values.items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    for inst in program.instructions:
        h.update(repr((inst.op, inst.inputs, inst.outputs, sorted(inst.attrs.items()))).encode())
    return h.hexdigest()[:16]


def resolve_criterion(program: Program, inputs: Mapping[str, np.ndarray], config: CampaignConfig) -> str:
    """The configured criterion, or the default for the model's output (top1 / CTR)."""
    if config.criterion:
        return oc.parse_criterion(config.criterion).text
    out = executor.run(program, inputs).outputs[config.output or program.output_names[0]]
    per_sample = int(np.prod(out.shape[1:])) if out.ndim > 1 else 1
    return oc.default_criterion(per_sample > 1)


def run_campaign(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    config: CampaignConfig,
    out_dir: str,
    *,
    workers: int | None = None,
    backend: str = "local",
    progress: bool = True,
    model_id: str | None = None,
    model_name: str | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> CampaignSummary:
    """Run (or resume) a campaign; results go to ``out_dir/trials.sqlite``."""
    if backend not in BACKENDS:
        raise CampaignError(f"unknown backend {backend!r}; choose local or ray")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise CampaignError(f"workers must be >= 1, got {workers}")
    if config.output is not None and config.output not in program.output_names:
        raise CampaignError(
            f"unknown graph output {config.output!r}; outputs are {', '.join(program.output_names)}"
        )
    plan = make_plan(program, config)
    criterion = resolve_criterion(program, inputs, config)
    meta = config.to_dict()
    meta["criterion"] = criterion
    meta["model"] = model_id or fingerprint_program(program)
    meta["inputs"] = fingerprint_inputs(inputs)
    store = TrialStore(out_dir, meta)
    try:
        if model_name:
            store.set_meta("model_name", model_name)
        store.write_cells([
            {"cell": c.index, "dtype": c.dtype, "bit": c.bit, "label": c.label(),
             "keys": json.dumps(dict(c.keys)), "params": ",".join(c.params),
             "bits_total": c.bits_total, "population": plan.populations[c.index],
             "planned": plan.planned[c.index]} for c in plan.cells
        ])
        from faults.runner import Runner

        runner = Runner(program, inputs, config, criterion, store, plan, workers, backend, progress, on_chunk)
        runner.key = store.meta("config_hash") or "campaign"
        return runner.run(out_dir)
    finally:
        store.close()


