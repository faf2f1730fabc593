"""A PVF campaign's definition and plan.

A campaign is a configuration (:class:`CampaignConfig`), a program and its evaluation inputs.
Its cells (strata, :mod:`faults.pvf.targets`) are numbered ``0..C-1``; trial ``t`` is
repetition ``t // C`` of cell ``t % C`` and draws everything it needs — the parameter
(weighted by bits), the fault (element, bit), the inputs — from :func:`trial_rng`
(``Generator(PCG64(SeedSequence([seed, t])))``). A trial is therefore defined by (seed, t) and
the configuration alone.

Sample size per cell (:func:`make_plan`):

* ``trials`` faults per cell, drawn with replacement;
* ``margin``: Leveugle et al.'s size for draws *with* replacement, ``t² p(1-p) / e²`` (the
  paper's finite-population correction assumes draws without replacement and would leave the
  margin unmet: :mod:`faults.common.stats`), capped by ``trials`` if given. A cell whose size
  reaches its population ``N`` (bounded, uniformly drawn fault models, parameters chosen by
  bits, no int8 scales: :func:`faults.common.fault_models.enumerable`) is *enumerated*: its
  planned size is ``N`` (or the ``trials`` cap) and repetition ``r`` is fault number
  ``perm[r]`` of the cell (:func:`faults.common.fault_models.fault_at`), ``perm`` a permutation
  of ``0..N-1`` fixed by (seed, cell) — each fault exactly once, any prefix a sample without
  replacement. Whether a cell is enumerated depends on the identity alone (margin, confidence,
  fault model), never on ``trials``, so a growing campaign keeps its trials. A fully run
  enumerated cell whose faults each saw every input (``inputs_per_trial = 0``) has no sampling
  error: its estimate is exact (zero-width interval);
* adaptive (``half_width``): a two-stage design per cell (:mod:`faults.common.sequential`):
  a pilot of ``max(round_trials, min_trials)`` trials, then the total fixed from the pilot's
  count alone (at most ``trials``; :mod:`faults.pvf.runner`);
* time to answer (``precision``: a relative half-width of the population PVF): strata of the
  hot bit position per layer plus one rest stratum, a pilot of ``pilot_trials`` per stratum,
  then allocation rounds from the stored results (:mod:`faults.pvf.precision`; at most
  ``trials`` per stratum).

Outcomes follow ``nonfinite`` (:mod:`faults.common.outcome`: a NaN/Inf output counts as SDC by
default — accelerators do not trap on it — or as DUE, or ``apart``); the stored raw records do
not depend on it, so reports can re-apply another policy.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Mapping, Sequence

import numpy as np

from accelsim import executor
from accelsim.errors import UserError
from accelsim.ir import Program
from accelsim.storage import check_format

from faults.common import outcome as oc
from faults.common import stats
from faults.common.fault_models import FaultModel, enumerable, parse_fault, population_size
from faults.common.scales import base_of
from faults.pvf.precision import precision_cells, stratum_population
from faults.pvf.targets import Cell, parameter_spec, parse_target, plan_cells

BACKENDS = ("local", "ray")
SAMPLE_SIZE_FIELDS = ("trials", "precision", "pilot_trials")  # a campaign may grow or tighten


class CampaignError(UserError, ValueError):
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
    nonfinite: str = oc.DEFAULT_NONFINITE
    precision: float | None = None  # target relative half-width of the population PVF
    pilot_trials: int = 30  # precision mode: pilot trials per stratum

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
        object.__setattr__(self, "nonfinite", oc.check_nonfinite(self.nonfinite))
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
        if self.precision is not None:
            _check_precision(self)
        _check_hostile(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """Every field that defines what trial ``t`` is (all but the sample size ``trials``:
        a campaign may grow, and trial ``t`` stays the same trial; a precision campaign may be
        tightened). A precision campaign's strata are its own: marked ``strata``."""
        identity = {k: v for k, v in self.to_dict().items() if k not in SAMPLE_SIZE_FIELDS}
        if self.precision is not None:
            identity["strata"] = "precision"
        return identity


def _check_precision(config: CampaignConfig) -> None:
    """The time-to-answer mode's own constraints (:mod:`faults.pvf.precision`)."""
    p = config.precision
    if not (isinstance(p, (int, float)) and 0.0 < p < 1.0):
        raise CampaignError(f"precision (relative half-width) must be in (0, 1), got {p}")
    if config.margin is not None or config.half_width is not None:
        raise CampaignError("precision sets the sample size itself: no margin or half-width with it")
    if "bit" in config.by:
        raise CampaignError("precision strata are the hot bit per layer and the rest: --by takes no 'bit' there")
    if config.weighting != "bits":
        raise CampaignError("precision estimates the bits-weighted population PVF: weighting must be 'bits'")
    if config.pilot_trials < 1 or config.pilot_trials > MAX_TRIALS:
        raise CampaignError(f"pilot_trials must be in 1..2^62, got {config.pilot_trials}")
    if config.trials < config.pilot_trials:
        raise CampaignError(f"trials (the cap per stratum) {config.trials} is below pilot_trials {config.pilot_trials}")


MAX_TRIALS = 2**62  # trial indices are SQLite INTEGERs
MAX_CHUNK = 65536  # trials evaluated together (memory grows with it)


def _check_hostile(config: CampaignConfig) -> None:
    """Values that are refused before anything runs: confidence outside (0, 1) or NaN, a count
    past what a trial index holds, a chunk too big to evaluate at once, a stratum key or a
    dtype listed twice."""
    if not 0.0 < config.confidence < 1.0:
        raise CampaignError(f"confidence must be in (0, 1), got {config.confidence}")
    for name in ("trials", "round_trials", "min_trials"):
        if getattr(config, name) > MAX_TRIALS:
            raise CampaignError(f"{name} {getattr(config, name)} is more than {MAX_TRIALS} (2^62)")
    if config.margin is not None and 0.0 < config.margin < 1.0 and not 0 < config.trials <= MAX_TRIALS:
        z = NormalDist().inv_cdf(0.5 + config.confidence / 2.0)
        if z * z / (4.0 * config.margin ** 2) > MAX_TRIALS:  # Leveugle's size at p = 1/2
            raise CampaignError(f"margin {config.margin:g} needs more than {MAX_TRIALS} (2^62) trials per stratum")
    if config.chunk_size > MAX_CHUNK:
        raise CampaignError(f"chunk_size {config.chunk_size} is more than {MAX_CHUNK}")
    for name in ("by", "dtypes"):
        values = getattr(config, name)
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise CampaignError(f"{name} lists {twice[0]!r} twice")


# ---------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Plan:
    cells: tuple[Cell, ...]
    planned: tuple[int, ...]  # trials per cell (cap for adaptive)
    populations: tuple[float, ...]
    exhaustive: tuple[bool, ...] = ()  # enumerated cells (module docstring)
    rest_bits: tuple[Mapping[str, tuple[int, ...]] | None, ...] = ()  # precision rest strata: positions by format

    def trial_index(self, cell: int, rep: int) -> int:
        return rep * len(self.cells) + cell

    def enumerated(self, cell: int) -> bool:
        return bool(self.exhaustive) and self.exhaustive[cell]

    def rest(self, cell: int) -> Mapping[str, tuple[int, ...]] | None:
        """The bit positions (by storage format) a precision rest stratum draws from, else None."""
        return self.rest_bits[cell] if self.rest_bits else None


def make_plan(program: Program, config: CampaignConfig) -> Plan:
    model = parse_fault(config.fault)
    if config.precision is not None:
        cells, rest = precision_cells(program, parse_target(config.target or None), config, model)
        pops = tuple(stratum_population(model, program, c, r) for c, r in zip(cells, rest))
        return Plan(tuple(cells), (int(config.trials),) * len(cells), pops, (False,) * len(cells), tuple(rest))
    cells = plan_cells(program, parse_target(config.target or None), config.by, config.dtypes, model,
                       config.weighting)
    planned: list[int] = []
    pops: list[float] = []
    exhaustive: list[bool] = []
    for cell in cells:
        pop = 0.0
        for name in cell.params:
            spec = parameter_spec(program, name)
            fmt = "fp32" if base_of(name) else cell.dtype  # scales are fp32 elements
            pop += population_size(model, spec.size, fmt, cell.bit)
        pops.append(pop)
        enumerate_cell = False
        if config.margin is not None:
            n = stats.leveugle_sample_size(pop, config.margin, config.confidence)  # with replacement
            enumerate_cell = n >= pop and may_enumerate(model, config.weighting, cell.params)
            if config.trials:
                n = min(n, config.trials)
        else:
            n = config.trials
        planned.append(int(n))
        exhaustive.append(enumerate_cell)
    return Plan(tuple(cells), tuple(planned), tuple(pops), tuple(exhaustive))


def may_enumerate(model: FaultModel, weighting: str, params: Sequence[str]) -> bool:
    """Whether a cell of these parameters can be enumerated: a bounded, uniformly drawn fault
    model, parameters chosen by bits (so the enumeration is the cell's fault distribution) and
    no int8 scales (drawn by their own sampler)."""
    return enumerable(model) and weighting == "bits" and not any(base_of(name) for name in params)


ENUMERATION_TAG = 0x656E756D  # "enum": keeps the permutations' seeds apart from trial seeds


def enumeration(program: Program, config: CampaignConfig, plan: Plan, cell: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(parameters, cumulative fault counts, permutation) of an enumerated cell: repetition ``r``
    is fault ``perm[r]`` of the cell, i.e. fault ``perm[r] - cum[j-1]`` of parameter ``j`` with
    ``cum[j-1] <= perm[r] < cum[j]``. The permutation depends on (seed, cell) only."""
    model = parse_fault(config.fault)
    c = plan.cells[cell]
    counts = [int(population_size(model, parameter_spec(program, name).size, c.dtype, c.bit)) for name in c.params]
    cum = np.cumsum(counts, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(config.seed), ENUMERATION_TAG, int(cell)])))
    return c.params, cum, rng.permutation(int(cum[-1]))


def enumerated_site(enum: tuple[tuple[str, ...], np.ndarray, np.ndarray], rep: int) -> tuple[str, int]:
    """(parameter, fault index in :func:`faults.common.fault_models.fault_at` order) of repetition ``rep``."""
    params, cum, perm = enum
    f = int(perm[rep])
    j = int(np.searchsorted(cum, f, side="right"))
    return params[j], f - (int(cum[j - 1]) if j else 0)


def trial_rng(seed: int, trial: int) -> np.random.Generator:
    """The generator of trial ``trial`` (depends on nothing else)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(trial)])))


def resolve_criterion(program: Program, inputs: Mapping[str, np.ndarray], config: CampaignConfig,
                      output_value: np.ndarray | None = None) -> str:
    """The configured criterion, or the default for the model's output (top1 / CTR).

    ``output_value``: the golden value of the judged output, if already computed.
    """
    if config.criterion:
        return oc.parse_criterion(config.criterion).text
    if output_value is None:
        sizes = {np.shape(v)[0] if np.ndim(v) else None for v in inputs.values()}
        if len(sizes) == 1 and None not in sizes:  # batch-major: two samples tell the output's shape
            inputs = {k: np.asarray(v)[:2] for k, v in inputs.items()}
        output_value = executor.run(program, inputs).outputs[config.output or program.output_names[0]]
    per_sample = int(np.prod(output_value.shape[1:])) if output_value.ndim > 1 else 1
    return oc.default_criterion(per_sample > 1)
