"""A PVF campaign's results: stored trials, per-stratum tables with intervals, DataFrames.

Read from a campaign store (``DIR/trials.sqlite``). Per grouping key (component, layer,
group, bit, dtype, param) every table row gives: trials (faults) ``n``; SDC count and PVF =
SDC / n with its interval (Wilson or Clopper–Pearson: the fault is the sampling unit, a
trial with several inputs is SDC when any input is); DUE count and rate with interval; when
trials have several inputs, the per-input SDC rate with a cluster-aware interval; and, when
the group spans cells of different sizes, ``pvf_weighted`` = Σ_cells (bits_c / Σ bits) ·
PVF_c (the population PVF of a uniformly random stored bit of the group).

Any criterion can be re-applied (``criterion=...``) from the stored raw deviations.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from faults.common import outcome as oc
from faults.common import stats
from faults.pvf.store import TrialStore

TRIAL_FRAME_COLUMNS = ("trial", "cell", "rep", "dtype", "param", "layer", "component", "grp", "role",
                       "element", "n_elements", "bit", "nflips", "old_value", "new_value", "start_op",
                       "early_masked", "n_inputs", "max_abs_dev", "n_nonfinite", "n_top1_changed",
                       "max_ctr_dev", "n_click_flipped", "n_sdc", "n_due", "outcome")
GROUP_KEYS = ("component", "layer", "group", "param", "bit", "dtype")
_COLUMN_OF = {"group": "grp"}


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
    due_rate: float
    due_lo: float
    due_hi: float
    input_rate: float
    input_lo: float
    input_hi: float
    pvf_weighted: float
    weighted_lo: float
    weighted_hi: float
    bits: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load(out_dir: str | Path, criterion: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(config, cells, trials); with ``criterion`` the outcomes are recomputed from the records."""
    with TrialStore(out_dir, readonly=True) as store:
        config = store.config()
        config["model_name"] = config.get("model_name") or config.get("model", "")
        cells = store.cells()
        cols = list(TRIAL_FRAME_COLUMNS)
        if criterion:
            cols.append("records")
        trials = store.trials(cols)
    if criterion:
        crit = oc.parse_criterion(criterion)
        for row in trials:
            rec = oc.records_from_bytes(row.pop("records"))
            outs = crit.outcomes(rec)
            row["outcome"] = int(outs.max()) if outs.size else 0
            row["n_sdc"] = int(np.sum(outs == oc.SDC))
            row["n_due"] = int(np.sum(outs == oc.DUE))
        config = {**config, "criterion": crit.text}
    return config, cells, trials


def group_table(
    trials: Sequence[dict[str, Any]], cells: Sequence[dict[str, Any]], key: str,
    confidence: float = 0.95, method: str = "wilson",
) -> list[GroupRow]:
    """One row per value of ``key`` (sorted naturally)."""
    column = _COLUMN_OF.get(key, key)
    bits_of_cell = {c["cell"]: c["bits_total"] for c in cells}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in trials:
        groups.setdefault(str(row[column]), []).append(row)
    out: list[GroupRow] = []
    for value, rows in groups.items():
        n = len(rows)
        sdc = sum(r["outcome"] == oc.SDC for r in rows)
        due = sum(r["outcome"] == oc.DUE for r in rows)
        lo, hi = stats.interval(sdc, n, confidence, method)
        dlo, dhi = stats.interval(due, n, confidence, method)
        per_input = stats.clustered_rate([r["n_sdc"] for r in rows], [r["n_inputs"] for r in rows],
                                         confidence, method)
        by_cell: dict[int, list[int]] = {}
        for r in rows:
            by_cell.setdefault(r["cell"], []).append(r["outcome"] == oc.SDC)
        cell_bits = _cell_weights(by_cell, bits_of_cell)
        weighted = stats.stratified([sum(v) for v in by_cell.values()], [len(v) for v in by_cell.values()],
                                    cell_bits, confidence, method)
        out.append(GroupRow(key, value, n, sdc, due, sdc / n, lo, hi, due / n, dlo, dhi,
                            per_input.pvf, per_input.lo, per_input.hi, weighted.pvf, weighted.lo, weighted.hi,
                            int(sum(bits_of_cell.get(c, 0) for c in by_cell))))
    return sorted(out, key=lambda g: natural_key(g.value))


def _cell_weights(by_cell: dict[int, list[int]], bits_of_cell: dict[int, int]) -> list[float]:
    """Population weight of each cell: its stored bits, split evenly among the cells that share
    the same parameters (e.g. the bit-position cells of one layer)."""
    return [float(bits_of_cell.get(c, 1)) for c in by_cell]


def natural_key(text: str) -> tuple:
    """Sort key: numbers by value first, then text with embedded numbers compared as numbers."""
    try:
        return (0, float(text), ())
    except ValueError:
        return (1, 0.0, tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)))


def population_estimate(trials: Sequence[dict[str, Any]], cells: Sequence[dict[str, Any]],
                        confidence: float = 0.95, method: str = "wilson") -> stats.Estimate:
    """PVF of a uniformly random stored bit of the campaign's population (strata weighted by bits)."""
    by_cell: dict[int, list[int]] = {}
    for t in trials:
        by_cell.setdefault(t["cell"], []).append(t["outcome"] == oc.SDC)
    bits_of_cell = {c["cell"]: c["bits_total"] for c in cells}
    return stats.stratified([sum(v) for v in by_cell.values()], [len(v) for v in by_cell.values()],
                            _cell_weights(by_cell, bits_of_cell), confidence, method)


class CampaignResults:
    """The results of the campaign in ``out_dir`` (read-only), as pandas DataFrames.

    Args:
        criterion: re-apply another criterion to the stored raw deviations.
    """

    def __init__(self, out_dir: str | Path, criterion: str | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.config, self._cells, self._trials = load(out_dir, criterion)
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
        """One row per value of ``by`` (component, layer, group, param, bit, dtype) with intervals."""
        import pandas as pd

        if by not in GROUP_KEYS:
            raise KeyError(f"unknown grouping {by!r}; choose {', '.join(GROUP_KEYS)}")
        rows = group_table(self._trials, self._cells, by, self.confidence, self.method)
        return pd.DataFrame([r.as_dict() for r in rows])

    def population(self) -> stats.Estimate:
        """Population PVF (strata weighted by their stored bits) with its interval."""
        return population_estimate(self._trials, self._cells, self.confidence, self.method)


