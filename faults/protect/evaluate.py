"""One upset under protection: strike, decode on read, classify, run what gets through.

Trial ``t`` of structure S draws from ``SeedSequence([seed, 100 + s, t])`` a physical cell
uniformly over the structure's cells (data and check bits of every codeword of every area,
:mod:`faults.protect.geometry`), a cycle uniformly over the inference, and a cluster size from
the upset model; the cluster covers adjacent cells of the physical row, which interleaving maps
to error patterns of one or several codewords. For each hit codeword the code's decoder decides
what a read returns (:mod:`faults.protect.codes`). The word is stored wrong from the upset's
cycle on, and a codeword is *read* after it iff some data element in it has a read at or after
that cycle (resolved through the residency table, :mod:`faults.avf.sites`). Per trial:

* ``corrected`` — every hit codeword decodes to its data (a single-error correcting code), or
  was never read (``unread``): masked;
* ``true_due`` — a read codeword is detected uncorrectable and some of its wrong data bits
  belong to an element read after the upset (the error would have been consumed);
  ``false_due`` — detected on a read although no wrong data bit is read after the upset (only
  other elements of the word are, or only check bits were hit). Policy ``halt``: the inference
  stops, a DUE. Policy ``zero``: every element of the word read after the upset is read as 0,
  the inference runs and is classified (``zeroed``: SDC or masked);
* ``silent`` — an undetected or miscorrected error leaves data bits wrong: the elements they
  belong to are corrupted for exactly the reads after the upset and the inference runs
  (:meth:`faults.inject.PartialInjector.evaluate_hits`): SDC or masked.

With a window of S inferences between scrubs (HBM only persists), later inferences decode the
same stored word again: corrected stays masked, a detection is already a DUE in inference j, and
a silent error is the parameter-level fault for the rest of the window.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from faults.avf.context import AvfContext
from faults.avf.direct import _counts
from faults.inject import ElementHit, HitFault
from faults.protect.codes import CORRECTED, DETECTED, MISCORRECTED, UNDETECTED
from faults.protect.geometry import Area, draw_area
from faults.protect.upsets import UpsetModel, draw_cluster_errors

CLASSES = ("corrected", "unread", "true_due", "false_due", "zeroed", "silent")
STRUCTURE_SEED = {"hbm": 100, "weight_sram": 101, "embedding_sram": 102, "pe": 103}


@dataclass(frozen=True)
class Struck:
    """What one upset hit: the area, the cycle, and per hit codeword its decode outcome, the raw
    data-bit errors and the data bits still wrong after decoding."""

    area: Area
    cycle: int
    cluster: int
    codewords: np.ndarray
    outcomes: np.ndarray
    raw_data: np.ndarray      # bool [M, k]
    after_decode: np.ndarray  # bool [M, k]


def strike(ctx: AvfContext, areas: tuple[Area, ...], upset: UpsetModel, seed: int, structure: str,
           trial: int) -> Struck:
    """Draw trial ``trial``'s upset and decode every codeword it hits (module docstring)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [int(seed), STRUCTURE_SEED[structure], int(trial)])))
    area, cell = draw_area(areas, rng)
    cycle = int(rng.integers(ctx.total_cycles))
    errors = draw_cluster_errors(upset, area.layout(), [cell], rng)
    batch = area.scheme.code.decode_many(errors.patterns)
    k = area.scheme.code.data_bits
    return Struck(area, cycle, int(errors.size[0]), errors.codeword, batch.outcome_codes,
                  errors.patterns[:, :k], batch.data_errors)


def _word_status(ctx: AvfContext, area: Area, codeword: int, cycle: int):
    """Resolutions of the data of ``codeword`` at ``cycle``, one per storage unit (byte / register)."""
    k = area.scheme.code.data_bits
    units: dict[int, object] = {}
    for site in area.sites(codeword, np.arange(0, k, area.register_bits), cycle):
        if site is not None and site.address not in units:
            units[site.address] = ctx.resolver.resolve(site)
    return units


def _hits(ctx: AvfContext, area: Area, codeword: int, bits: np.ndarray, cycle: int, zero: bool = False):
    """ElementHits for the wrong data ``bits`` of ``codeword`` (``zero``: the whole live word as 0)."""
    grouped: dict[tuple[str, int], list] = {}
    for site in area.sites(codeword, bits, cycle):
        if site is None:
            continue
        res = ctx.resolver.resolve(site)
        if res.masked:
            continue
        entry = grouped.setdefault((res.param, res.element), [res, 0])
        entry[1] |= 1 << res.element_bit
    out = []
    for (param, element), (res, mask) in grouped.items():
        stored = ctx.injector.stored_bits(param, element)
        out.append(ElementHit(param, element, 0 if zero else stored ^ mask, res.uses, res.full, res.share))
    return out


def classify(ctx: AvfContext, struck: Struck) -> tuple[str, list]:
    """(class, element hits to run) of one upset (module docstring)."""
    area, cycle = struck.area, struck.cycle
    detected_read = detected_true = False
    hits: list = []
    zero_hits: list = []
    any_read = False
    k = area.scheme.code.data_bits
    for j, word in enumerate(struck.codewords.tolist()):
        outcome = int(struck.outcomes[j])
        status = _word_status(ctx, area, word, cycle)
        read = any(not r.masked for r in status.values())
        any_read |= read
        if outcome == DETECTED and read:
            detected_read = True
            wrong = np.flatnonzero(struck.raw_data[j])
            detected_true |= bool(_hits(ctx, area, word, wrong, cycle)) if wrong.size else False
            if area.scheme.policy == "zero":
                zero_hits += _hits(ctx, area, word, np.arange(k), cycle, zero=True)
        elif outcome in (UNDETECTED, MISCORRECTED) and read:
            hits += _hits(ctx, area, word, np.flatnonzero(struck.after_decode[j]), cycle)
    if detected_read and area.scheme.policy == "halt":
        return ("true_due" if detected_true else "false_due"), []
    if detected_read:
        return "zeroed", zero_hits + hits
    if hits:
        return "silent", hits
    return ("corrected" if any_read else "unread"), []


def evaluate_trials(ctx: AvfContext, areas: tuple[Area, ...], upset: UpsetModel, structure: str,
                    trials: Sequence[int], seed: int, rows: np.ndarray) -> list[dict]:
    """Strike, classify and (where data gets through) run each trial on the samples ``rows``."""
    struck = [strike(ctx, areas, upset, seed, structure, t) for t in trials]
    classes = [classify(ctx, s) for s in struck]
    runs = [i for i, (_, hits) in enumerate(classes) if hits]
    results = ctx.injector.evaluate_hits([HitFault(tuple(classes[i][1]), rows) for i in runs])
    outputs = dict(zip(runs, (r.output for r in results)))
    golden = np.asarray(ctx.fast.golden_output)
    out = []
    for i, (t, s, (cls, hits)) in enumerate(zip(trials, struck, classes)):
        n_sdc, n_due, dev = _counts(ctx, golden, rows, outputs.get(i))
        out.append(dict(
            structure=structure, trial=int(t), area=s.area.name, cycle=s.cycle, cluster=s.cluster,
            codewords=int(s.codewords.size), outcome_codes=",".join(str(int(o)) for o in s.outcomes),
            cls=cls, elements=len(hits), n_inputs=int(rows.size), n_sdc=n_sdc, n_due=n_due, max_abs_dev=dev,
            event_sdc=int(n_sdc > 0), event_nonfinite_due=int(n_due > 0),
            true_due=int(cls == "true_due"), false_due=int(cls == "false_due")))
    return out


def corrected_share(struck: Sequence[Struck]) -> float:
    """Share of hit codewords the decoder corrected (a sanity figure for reports)."""
    codes = np.concatenate([s.outcomes for s in struck]) if struck else np.zeros(0)
    return float(np.mean(codes == CORRECTED)) if codes.size else float("nan")
