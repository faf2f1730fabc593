"""Joined AVF: residency (ACE bit-cycles) joined with PVF from a campaign.

``AVF_S = Σ_p ACE_p(S) · PVF_p / (bits_S · T)`` with ACE_p(S) the ACE bit-cycles of parameter
p in S (``ResidencyTable.ace_by_parameter``) and PVF_p its per-input SDC rate from a PVF
campaign (same dtype, criterion, model and inputs, 1 input per trial). The interval is
``[Σ ACE·PVF_lo, Σ ACE·PVF_hi] / (bits_S·T)`` (each PVF interval bound propagated;
conservative).

The joined form assumes a flip anywhere in an ACE interval corrupts *every* read of the
parameter, as the PVF fault does. It holds when a copy is the only one and is read once after
the flip (e.g. HBM before the first transfer, an SRAM tile read by one fold). It overestimates
when the flip reaches only part of the reads: a weight-stationary PE flip mid-fold (only later
output rows), an SRAM tile re-read by several folds or M tiles, an HBM flip between two
transfers. :func:`gap_explanation` quantifies this from the direct trials.

A PVF campaign is joined only if it was measured on the same program and inputs (its store's
fingerprints); anything else is a one-line refusal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from faults.pvf import results
from faults.pvf.campaign import run_campaign
from faults.pvf.plan import CampaignConfig
from faults.pvf.targets import labels
from faults.avf.context import AvfContext, AvfError
from faults.avf.direct import DirectAvf


def check_provenance(ctx: AvfContext, pvf_dir: str, config: Mapping[str, Any]) -> None:
    """One-line :class:`AvfError` unless the campaign in ``pvf_dir`` ran on this program and inputs."""
    if config.get("program") != ctx.program_fingerprint:
        raise AvfError(f"PVF campaign in {pvf_dir} was measured on another model (program fingerprint "
                       f"{config.get('program')}, this study's is {ctx.program_fingerprint}); it cannot be joined")
    if config.get("inputs") != ctx.inputs_fingerprint:
        raise AvfError(f"PVF campaign in {pvf_dir} was measured on other inputs (fingerprint {config.get('inputs')}, "
                       f"this study's first {ctx.batch} samples give {ctx.inputs_fingerprint}); it cannot be joined")

@dataclass(frozen=True)
class PvfEntry:
    """Per-input SDC / DUE rate of a parameter's faults with interval bounds."""

    sdc: float
    sdc_lo: float
    sdc_hi: float
    due: float
    due_lo: float
    due_hi: float


@dataclass(frozen=True)
class JoinedAvf:
    """Joined AVF of one structure; ``per_param``: (param, ACE bit-cycles, PVF, contribution)."""

    structure: str
    avf_sdc: float
    sdc_lo: float
    sdc_hi: float
    avf_due: float
    due_lo: float
    due_hi: float
    ace_fraction: float
    per_param: tuple[tuple[str, int, float, float], ...] = ()


def joined_avf(ctx: AvfContext, structure: str, pvf: Mapping[str, PvfEntry]) -> JoinedAvf:
    """Σ_p ACE_p · PVF_p / (bits × T) with propagated PVF bounds (module docstring)."""
    ace = ctx.schedule.residency.ace_by_parameter()
    denom = float(ctx.resolver.capacity_bits(structure)) * ctx.total_cycles
    acc = np.zeros(6)
    per = []
    for name, by_structure in ace.items():
        a = by_structure.get(structure, 0)
        if not a:
            continue
        if name not in pvf:
            raise AvfError(f"no PVF for parameter {name!r} (resident in {structure}); run the PVF campaign "
                           "over every parameter")
        e = pvf[name]
        acc += a * np.array([e.sdc, e.sdc_lo, e.sdc_hi, e.due, e.due_lo, e.due_hi])
        per.append((name, int(a), e.sdc, a * e.sdc / denom))
    v = acc / denom
    return JoinedAvf(structure, *v.tolist(), ctx.ace_fraction(structure), tuple(per))


def gap_explanation(direct: DirectAvf, joined: JoinedAvf, rows: Sequence[dict]) -> str:
    """One paragraph: do the two agree, and where the joined assumptions fail, by how much."""
    overlap = direct.sdc_lo <= joined.sdc_hi and joined.sdc_lo <= direct.sdc_hi
    live = [r for r in rows if r["status"] == "live"]
    partial = [r for r in live if not r["full"]]
    full = [r for r in live if r["full"]]

    def rate(rs):
        n = sum(r["n_inputs"] for r in rs)
        return (sum(r["n_sdc"] for r in rs) / n) if n else float("nan")

    text = (f"{direct.structure}: direct {direct.avf_sdc:.3g} [{direct.sdc_lo:.3g}, {direct.sdc_hi:.3g}] vs "
            f"joined {joined.avf_sdc:.3g} [{joined.sdc_lo:.3g}, {joined.sdc_hi:.3g}]: "
            f"{'intervals overlap' if overlap else 'intervals DO NOT overlap'}. ")
    text += (f"Live share {direct.live_fraction:.3g} (ACE share {direct.ace_fraction:.3g}); "
             f"{len(partial)} of {len(live)} live sites reached only part of the reads "
             f"(SDC rate {rate(partial):.3g} vs {rate(full):.3g} for sites reaching every read). ")
    if partial:
        text += ("The joined form counts every ACE bit-cycle at the parameter's full PVF; a flip late in a "
                 "residency (after some reads, e.g. mid-fold in a weight-stationary PE, or in a tile re-read "
                 "by several folds) corrupts only the remaining reads, so it matters less than PVF assumes.")
    else:
        text += "Every live site reached every read of its element: the joined assumptions hold here."
    return text


def pvf_table(ctx: AvfContext, pvf_dir: str, by: str = "param", confidence: float = 0.95,
              method: str = "wilson") -> dict[str, PvfEntry]:
    """Parameter -> PVF entry from the campaign in ``pvf_dir`` (strata ``by``; a parameter takes
    its stratum's rate). The campaign must use the context's dtype and criterion."""
    config, cells, trials = results.load(pvf_dir, criterion=ctx.criterion.text)
    check_provenance(ctx, pvf_dir, config)
    if ctx.dtype not in tuple(config.get("dtypes", ())):
        raise AvfError(f"PVF campaign in {pvf_dir} has dtypes {config.get('dtypes')}, the study uses {ctx.dtype}")
    trials = [t for t in trials if t["dtype"] == ctx.dtype]
    groups = {g.value: g for g in results.group_table(trials, cells, by, confidence, method)}
    out: dict[str, PvfEntry] = {}
    for name, p in ctx.program.parameters.items():
        g = groups.get(labels(p)["group" if by == "group" else by] if by != "param" else name)
        if g is not None:
            out[name] = PvfEntry(g.input_rate, g.input_lo, g.input_hi, g.due_rate, g.due_lo, g.due_hi)
    return out


def run_pvf(ctx: AvfContext, pvf_dir: str, trials: int, seed: int, by: str = "param",
            workers: int = 1, progress: bool = False) -> dict[str, PvfEntry]:
    """Run (or resume) the PVF campaign the joined AVF needs, then its table."""
    config = CampaignConfig(fault="sbf", dtypes=(ctx.dtype,), by=(by,), trials=trials, seed=seed,
                            criterion=ctx.criterion.text, output=ctx.output, inputs_per_trial=1)
    run_campaign(ctx.program, ctx.inputs, config, pvf_dir, workers=workers, progress=progress)
    return pvf_table(ctx, pvf_dir, by)
