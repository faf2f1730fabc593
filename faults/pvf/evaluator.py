"""Worker-side evaluation of a campaign's trials, in chunks.

A chunk is a list of consecutive trial indices fixed by the configuration (the same on any
number of workers). Each trial's fault is drawn from :func:`faults.pvf.plan.trial_rng`; the
chunk's faults are evaluated together by the injection engine (stacked where they start at
the same instruction) and compared with the golden output in one vectorised pass. A result row
holds the trial's fault, its raw deviation summary and the per-input records of the inputs
whose output changed (:mod:`faults.common.outcome`).

Memory: each golden cache keeps at most :func:`golden_budget_bytes` of activations (the
environment variable ``ACCELSIM_GOLDEN_BUDGET_GIB``, set by ``accelsim pvf
--golden-budget-gib``; default :data:`DEFAULT_GOLDEN_BUDGET_GIB` GiB) and recomputes the rest
bit for bit on demand: the budget changes the speed, never a result.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from accelsim.ir import Program

from faults.common import outcome as oc
from faults.common.fault_models import FaultModel, draw, fault_at, parse_fault
from faults.common.scales import ScaleCorruption, base_of, draw_scale, scale_name
from faults.inject import FastInjector, Fault
from faults.pvf.plan import CampaignConfig, enumerated_site, enumeration, make_plan, trial_rng
from faults.pvf.targets import Cell, labels, scale_parameters


DEFAULT_GOLDEN_BUDGET_GIB = 1.5
BUDGET_ENV = "ACCELSIM_GOLDEN_BUDGET_GIB"


def golden_budget_bytes() -> int | None:
    """Bytes of golden activations a worker keeps (``ACCELSIM_GOLDEN_BUDGET_GIB``; ``inf`` = all)."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    gib = float(text) if text else DEFAULT_GOLDEN_BUDGET_GIB
    if gib != gib or gib < 0:
        raise ValueError(f"{BUDGET_ENV} must be a number of GiB >= 0, got {text!r}")
    return None if gib == float("inf") else int(gib * (1 << 30))


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
        self._labels = {p.name: labels(p) for p in [*program.parameters.values(), *scale_parameters(program)]}
        self._cum = [np.cumsum(c.weights) for c in self.plan.cells]
        self._enumerations: dict[int, Any] = {}  # enumerated cells: (params, cum, permutation)

    def injector(self, dtype: str) -> FastInjector:
        inj = self._injectors.get(dtype)
        if inj is None:
            inj = FastInjector(self.program, self.inputs, dtype, self.config.output,
                               budget_bytes=golden_budget_bytes())
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
        base = base_of(param)
        bit = cell.bit
        rest = self.plan.rest(cell.index)
        if rest is not None:  # a precision rest stratum: a uniform rest bit of the parameter
            positions = rest["fp32" if base is not None else cell.dtype]
            bit = int(positions[rng.integers(len(positions))])
        if self.plan.enumerated(cell.index):  # each fault of the cell once, in a permuted order
            if cell.index not in self._enumerations:
                self._enumerations[cell.index] = enumeration(self.program, self.config, self.plan, cell.index)
            param, index = enumerated_site(self._enumerations[cell.index], rep)
            corruption = fault_at(self.model, inj.stored(param), index, bit=cell.bit)
        elif base is None:
            corruption = draw(self.model, inj.stored(param), rng, bit=bit)
        else:  # the fp32 scales of an int8 parameter: a multi-element corruption of the parameter
            spec = self.program.parameters[base]
            corruption = draw_scale(self.model, inj.stored(base), spec.shape, spec.channel_axis, rng, bit=bit)
            param = base
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
        if len(by_dtype) == 1:  # one comparison already holds the chunk's records in trial order
            rec_cat = rec_all
        else:
            rec_cat = np.concatenate(records)
        bounds = np.concatenate([[0], np.cumsum([r.size for r in records])])
        outcomes_all = self.criterion.outcomes(rec_cat, self.config.nonfinite)
        summaries = oc.summarize_many(rec_cat, bounds)
        rows = []
        for i, (t, (cell, rep, fault), res) in enumerate(zip(trials, drawn, results)):
            inj = self.injector(cell.dtype)
            outcomes = outcomes_all[bounds[i]:bounds[i + 1]]
            c = fault.corruption
            if isinstance(c, ScaleCorruption):  # recorded as the scales' own element and values
                name, element, count = scale_name(fault.param), int(c.channels[0]), int(c.channels.size)
                new, old = c.new_scales, c.old_scales
            else:
                name, element, count = fault.param, int(c.index[0]), int(c.index.size)
                new, old = inj.fault_values(fault)
            lab = self._labels[name]
            row = {
                "trial": int(t), "cell": cell.index, "rep": int(rep), "dtype": cell.dtype,
                "param": name, "layer": lab["layer"], "component": lab["component"],
                "grp": lab["group"], "role": lab["role"], "element": element,
                "n_elements": count, "bit": int(c.bit), "nflips": int(c.nflips),
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
