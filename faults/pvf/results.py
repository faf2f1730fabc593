"""A PVF campaign's results: stored trials, tables per grouping key with intervals, DataFrames.

Read from a campaign store (``DIR/trials.sqlite``). Per grouping key (component, layer, group,
role, param, bit, dtype) every row (:class:`GroupRow`) gives, with intervals:

* ``pvf`` [``lo``, ``hi``] — the headline: the **bits-weighted** PVF, the SDC probability of a
  uniformly random stored bit of the group: ``Σ_c w_c k_c/n_c`` over the strata (cells) pooled in
  the row, each weighted by its share of the population — the bits of its parameters, split
  evenly among the cells that share the same parameters (e.g. the 32 bit-position cells of one
  fp32 layer each cover 1/32 of its bits). Interval: :func:`faults.common.intervals.stratified`.
  Where the group cuts across a cell (e.g. layers pooled from ``--by component`` strata, bit
  positions from ``--by layer`` strata), the cell's share of the group is its bit-position share
  (1/|positions| for single-bit models) or else the fraction of its trials that fell in the group;
  the interval treats these shares as known. Cells of the group without trials are counted in
  ``unsampled`` and take their worst case ``[0, w]`` in the bounds;
* ``pvf_pooled`` [``pooled_lo``, ``pooled_hi``] — the unweighted pooled count ``sdc / n``
  (equal to the headline for a one-cell row; otherwise it over-weights thinly populated cells);
* DUE count and (pooled) rate with interval; ``input_rate``: the per-(fault, input) SDC rate with
  the fault as the sampling unit (:func:`faults.common.intervals.clustered_rate`);
* non-finite outputs shown both ways, whatever the campaign's policy: ``nonfinite`` faults with a
  NaN/Inf output; ``pvf_nf_sdc`` (counted as SDC) and ``pvf_nf_excluded`` (not SDC), bits-weighted;
* activation (stuck-at: a fault forcing a bit to the value it already had changes nothing):
  ``activated`` faults, bits-weighted ``activated_share`` and ``pvf_activated`` — the PVF among
  activated faults, cell weights ``w_c · a_c/n_c`` (the observed activated shares) — beside the
  unconditional ``pvf``;
* ``exact``: every fault of the row's cells was evaluated on every input (enumerated cells with
  ``inputs_per_trial = 0``): no sampling error, zero-width interval.

Outcomes are recomputed from the stored raw deviations when another ``criterion`` or non-finite
policy (``nonfinite``: sdc / due / apart, :mod:`faults.common.outcome`) is asked for.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from faults.common import outcome as oc
from faults.common import stats
from faults.common.fault_models import parse_fault
from faults.pvf.plan import may_enumerate
from faults.pvf.store import TrialStore

TRIAL_FRAME_COLUMNS = ("trial", "cell", "rep", "dtype", "param", "layer", "component", "grp", "role",
                       "element", "n_elements", "bit", "nflips", "old_value", "new_value", "start_op",
                       "early_masked", "n_inputs", "max_abs_dev", "n_nonfinite", "n_top1_changed",
                       "max_ctr_dev", "n_click_flipped", "n_sdc", "n_due", "outcome")
GROUP_KEYS = ("component", "layer", "group", "role", "param", "bit", "dtype")
_COLUMN_OF = {"group": "grp"}
LEGACY_NONFINITE = "due"  # the policy of stores written before the policy existed


@dataclass
class GroupRow:
    key: str
    value: str
    n: int
    sdc: int
    due: int
    pvf: float
    lo: float
    hi: float
    pvf_pooled: float
    pooled_lo: float
    pooled_hi: float
    due_rate: float
    due_lo: float
    due_hi: float
    input_rate: float
    input_lo: float
    input_hi: float
    nonfinite: int
    pvf_nf_sdc: float
    nf_sdc_lo: float
    nf_sdc_hi: float
    pvf_nf_excluded: float
    nf_excluded_lo: float
    nf_excluded_hi: float
    activated: int
    activated_share: float
    activated_lo: float
    activated_hi: float
    pvf_activated: float
    pvf_activated_lo: float
    pvf_activated_hi: float
    bits: float
    cells: int
    unsampled: int
    exact: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


GROUP_ROW_FIELDS = tuple(f.name for f in fields(GroupRow))


def load(out_dir: str | Path, criterion: str | None = None, nonfinite: str | None = None,
         ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(config, cells, trials); with another ``criterion`` or ``nonfinite`` policy the outcomes
    are recomputed from the stored records (``config`` then names what was applied)."""
    with TrialStore(out_dir, readonly=True) as store:
        config = store.config()
        config["model_name"] = config.get("model_name") or config.get("model", "")
        cells = store.cells()
        stored_policy = config.get("nonfinite", LEGACY_NONFINITE)
        policy = oc.check_nonfinite(nonfinite) if nonfinite else stored_policy
        recompute = bool(criterion) or policy != stored_policy
        cols = list(TRIAL_FRAME_COLUMNS) + (["records"] if recompute else [])
        trials = store.trials(cols)
    config = {**config, "nonfinite": policy}
    if recompute:
        crit = oc.parse_criterion(criterion or config["criterion"])
        for row in trials:
            outs = crit.outcomes(oc.records_from_bytes(row.pop("records")), policy)
            row["outcome"] = int(outs.max()) if outs.size else oc.MASKED
            row["n_sdc"] = int(np.sum(outs == oc.SDC))
            row["n_due"] = int(np.sum(outs == oc.DUE))
        config["criterion"] = crit.text
    return config, cells, trials


# ---------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class _CellInfo:
    index: int
    dtype: str
    bit: int | None
    keys: dict[str, str]
    params: tuple[str, ...]
    weight: float  # population share: stored bits / cells sharing the same parameters
    population: float
    enumerable: bool


def _cell_infos(cells: Sequence[Mapping[str, Any]], config: Mapping[str, Any] | None) -> dict[int, _CellInfo]:
    model = parse_fault(config["fault"]) if config and config.get("fault") else None
    weighting = (config or {}).get("weighting", "bits")
    share: dict[tuple, int] = {}
    for c in cells:
        sig = (c["dtype"], c["params"])
        share[sig] = share.get(sig, 0) + 1
    out = {}
    for c in cells:
        params = tuple(p for p in str(c["params"]).split(",") if p)
        bit = c.get("bit")
        out[int(c["cell"])] = _CellInfo(
            int(c["cell"]), str(c["dtype"]), None if bit is None else int(bit), json.loads(c.get("keys") or "{}"),
            params, float(c["bits_total"]) / share[(c["dtype"], c["params"])], float(c.get("population") or 0),
            model is not None and may_enumerate(model, weighting, params))
    return out


def _cell_weights(cell_ids: Sequence[int], infos: Mapping[int, _CellInfo]) -> list[float]:
    """Population weight of each cell: its stored bits, split evenly among the cells that share
    the same parameters (e.g. the bit-position cells of one layer)."""
    return [infos[c].weight if c in infos else 1.0 for c in cell_ids]


def cell_value(info: _CellInfo, key: str) -> str | None:
    """The value of grouping ``key`` shared by every fault of the cell, if the cell's keys fix it."""
    if key == "dtype":
        return info.dtype
    if key == "bit":
        return None if info.bit is None else str(info.bit)
    if key in info.keys:
        return info.keys[key]
    layer = info.keys.get("layer")
    if layer is not None and key in ("component", "group"):
        parts = [p for p in layer.split(".") if not p.isdigit()]
        return (".".join(parts) or layer) if key == "component" else layer.split(".")[0]
    return None


def _bit_share(info: _CellInfo, model, value: str) -> float | None:
    """Exact share of bit position ``value`` in a cell drawing its bit uniformly, if known."""
    if model is None or model.kind not in ("sbf", "stuck0", "stuck1") or any("#" in p for p in info.params):
        return None
    positions = model.bit_positions(info.dtype)
    return (1.0 / len(positions)) if int(value) in positions else 0.0


# ---------------------------------------------------------------------------- tables
def group_table(
    trials: Sequence[dict[str, Any]], cells: Sequence[dict[str, Any]], key: str,
    confidence: float = 0.95, method: str = "wilson", config: Mapping[str, Any] | None = None,
) -> list[GroupRow]:
    """One row per value of ``key`` (sorted naturally); ``config`` (the campaign's) makes the
    bit shares and exactness exact (module docstring)."""
    column = _COLUMN_OF.get(key, key)
    infos = _cell_infos(cells, config)
    model = parse_fault(config["fault"]) if config and config.get("fault") else None
    by_value: dict[str, dict[int, list[dict[str, Any]]]] = {}
    cell_n: dict[int, int] = {}
    for row in trials:
        by_value.setdefault(str(row[column]), {}).setdefault(row["cell"], []).append(row)
        cell_n[row["cell"]] = cell_n.get(row["cell"], 0) + 1
    whole: dict[str, set[int]] = {}
    for info in infos.values():
        v = cell_value(info, key)
        if v is not None:
            whole.setdefault(v, set()).add(info.index)
    out = []
    for value, members in by_value.items():
        shares: dict[int, float] = {}
        for c, rows in members.items():
            info = infos.get(c)
            if info is not None and (c in whole.get(value, ()) or (len(info.params) == 1 and len(rows) == cell_n[c])):
                shares[c] = 1.0
            elif info is not None and key == "bit" and (exact := _bit_share(info, model, value)) is not None:
                shares[c] = exact
            else:
                shares[c] = len(rows) / cell_n[c]
        unsampled = [c for c in whole.get(value, ()) if c not in members]
        out.append(_row(key, value, _estimates(members, shares, unsampled, infos, confidence, method, config)))
    return sorted(out, key=lambda g: natural_key(g.value))


def _estimates(members: Mapping[int, list[dict[str, Any]]], shares: Mapping[int, float], unsampled: Sequence[int],
               infos: Mapping[int, _CellInfo], confidence: float, method: str,
               config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The pooled estimates of a group of cells (module docstring)."""
    ids = list(members) + list(unsampled)
    rows = [r for c in members for r in members[c]]
    w = np.array([w * shares.get(c, 1.0) for c, w in zip(ids, _cell_weights(ids, infos))])

    def count(pred) -> np.ndarray:
        return np.array([sum(1 for r in members[c] if pred(r)) for c in members] + [0] * len(unsampled), dtype=float)

    n_c = count(lambda r: True)
    sdc_c = count(lambda r: r["outcome"] == oc.SDC)
    nf_c = count(lambda r: r["n_nonfinite"] > 0)
    excl_c = count(lambda r: r["outcome"] == oc.SDC and r["n_nonfinite"] == 0)
    act_c = count(lambda r: r["nflips"] > 0)
    sdc_act_c = count(lambda r: r["outcome"] == oc.SDC and r["nflips"] > 0)
    all_inputs = bool(config) and int(config.get("inputs_per_trial", 1)) == 0
    exact = [all_inputs and c in infos and infos[c].enumerable and n == infos[c].population
             for c, n in zip(ids, n_c)]

    def strat(k, n, weights) -> stats.Estimate:
        return stats.stratified(k, n, weights, confidence, method, exact=exact)

    n, sdc = int(n_c.sum()), int(sdc_c.sum())
    due = sum(r["outcome"] == oc.DUE for r in rows)
    share_act = np.where(n_c > 0, act_c / np.maximum(n_c, 1), 1.0)
    return {
        "n": n, "sdc": sdc, "due": due, "nonfinite": int(nf_c.sum()), "activated": int(act_c.sum()),
        "bits": float(w.sum()), "cells": len(ids), "unsampled": len(unsampled),
        "pvf": strat(sdc_c, n_c, w),
        "pooled": stats.estimate(sdc, n, confidence, method),
        "due_rate": stats.estimate(due, n, confidence, method),
        "input": stats.clustered_rate([r["n_sdc"] for r in rows], [r["n_inputs"] for r in rows], confidence, method),
        "nf_sdc": strat(excl_c + nf_c, n_c, w),
        "nf_excluded": strat(excl_c, n_c, w),
        "activated_share": strat(act_c, n_c, w),
        "pvf_activated": strat(sdc_act_c, act_c, w * share_act),
    }


def _row(key: str, value: str, est: Mapping[str, Any]) -> GroupRow:
    def e(name: str) -> tuple[float, float, float]:
        x = est[name]
        return x.pvf, x.lo, x.hi

    return GroupRow(key, value, est["n"], est["sdc"], est["due"], *e("pvf"), *e("pooled"), *e("due_rate"),
                    *e("input"), est["nonfinite"], *e("nf_sdc"), *e("nf_excluded"), est["activated"],
                    *e("activated_share"), *e("pvf_activated"), est["bits"], est["cells"], est["unsampled"],
                    est["pvf"].exact)


def natural_key(text: str) -> tuple:
    """Sort key: numbers by value first, then text with embedded numbers compared as numbers."""
    try:
        return (0, float(text), ())
    except ValueError:
        return (1, 0.0, tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)))


def population_estimates(trials: Sequence[dict[str, Any]], cells: Sequence[dict[str, Any]],
                         confidence: float = 0.95, method: str = "wilson",
                         config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole campaign pooled: every cell at its population weight, cells without trials
    included (flagged, worst case); the same estimates as a table row (keys of :func:`_estimates`)."""
    infos = _cell_infos(cells, config)
    members: dict[int, list[dict[str, Any]]] = {}
    for t in trials:
        members.setdefault(t["cell"], []).append(t)
    unsampled = [c for c in infos if c not in members]
    return _estimates(members, {}, unsampled, infos, confidence, method, config)


def population_estimate(trials: Sequence[dict[str, Any]], cells: Sequence[dict[str, Any]],
                        confidence: float = 0.95, method: str = "wilson",
                        config: Mapping[str, Any] | None = None) -> stats.Estimate:
    """Bits-weighted PVF of a uniformly random stored bit of the campaign's population."""
    return population_estimates(trials, cells, confidence, method, config)["pvf"]


class CampaignResults:
    """The results of the campaign in ``out_dir`` (read-only), as pandas DataFrames.

    Args:
        criterion: re-apply another criterion to the stored raw deviations.
        nonfinite: re-apply another non-finite policy (sdc, due, apart).
    """

    def __init__(self, out_dir: str | Path, criterion: str | None = None, nonfinite: str | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.config, self._cells, self._trials = load(out_dir, criterion, nonfinite)
        self.last_run = None  # the CampaignSummary of the run that produced this object, if any

    @property
    def confidence(self) -> float:
        return float(self.config.get("confidence", 0.95))

    @property
    def method(self) -> str:
        return str(self.config.get("method", "wilson"))

    def trials(self):
        """One row per trial: fault (param, element, bit, ...), raw deviations, outcome."""
        import pandas as pd

        return pd.DataFrame(self._trials, columns=list(TRIAL_FRAME_COLUMNS))

    def cells(self):
        """One row per stratum: keys, parameters, stored bits, population, planned trials."""
        import pandas as pd

        return pd.DataFrame(self._cells)

    def table(self, by: str = "layer"):
        """One row per value of ``by`` (component, layer, group, role, param, bit, dtype): the
        bits-weighted PVF (headline) and every other column of :class:`GroupRow`."""
        import pandas as pd

        if by not in GROUP_KEYS:
            raise KeyError(f"unknown grouping {by!r}; choose {', '.join(GROUP_KEYS)}")
        rows = group_table(self._trials, self._cells, by, self.confidence, self.method, self.config)
        return pd.DataFrame([r.as_dict() for r in rows], columns=list(GROUP_ROW_FIELDS))

    def population(self) -> stats.Estimate:
        """Bits-weighted population PVF with its interval (unsampled strata flagged)."""
        return population_estimate(self._trials, self._cells, self.confidence, self.method, self.config)
