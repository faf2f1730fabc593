"""A PVF campaign's definition and plan.

A campaign is a configuration (:class:`CampaignConfig`), a program and its evaluation inputs.
Its cells (strata, :mod:`faults.pvf.targets`) are numbered ``0..C-1``; trial ``t`` is
repetition ``t // C`` of cell ``t % C`` and draws everything it needs — the parameter
(weighted by bits), the fault (element, bit), the inputs — from :func:`trial_rng`
(``Generator(PCG64(SeedSequence([seed, t])))``). A trial is therefore defined by (seed, t) and
the configuration alone.

Sample size per cell (:func:`make_plan`): ``trials``; or Leveugle et al.'s formula for
``margin`` (capped by ``trials`` if given); or adaptive (``half_width``): rounds of
``round_trials`` per active cell, a cell stops after a round once its SDC interval half-width
is <= ``half_width`` (:mod:`faults.pvf.runner`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from accelsim import executor
from accelsim.errors import UserError
from accelsim.ir import Program
from accelsim.storage import check_format

from faults.common import outcome as oc
from faults.common import stats
from faults.common.fault_models import parse_fault, population_size
from faults.pvf.targets import Cell, parse_target, plan_cells

BACKENDS = ("local", "ray")
SAMPLE_SIZE_FIELDS = ("trials",)


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

    def identity(self) -> dict[str, Any]:
        """Every field that defines what trial ``t`` is (all but the sample size ``trials``:
        a campaign may grow, and trial ``t`` stays the same trial)."""
        return {k: v for k, v in self.to_dict().items() if k not in SAMPLE_SIZE_FIELDS}


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


def resolve_criterion(program: Program, inputs: Mapping[str, np.ndarray], config: CampaignConfig,
                      output_value: np.ndarray | None = None) -> str:
    """The configured criterion, or the default for the model's output (top1 / CTR).

    ``output_value``: the golden value of the judged output, if already computed.
    """
    if config.criterion:
        return oc.parse_criterion(config.criterion).text
    if output_value is None:
        output_value = executor.run(program, inputs).outputs[config.output or program.output_names[0]]
    per_sample = int(np.prod(output_value.shape[1:])) if output_value.ndim > 1 else 1
    return oc.default_criterion(per_sample > 1)
