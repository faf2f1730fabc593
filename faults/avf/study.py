"""One AVF study of a model on one hardware config: direct + joined AVF per structure, FIT.

A study is defined by a :class:`StudyConfig` (structures, trials, seed, sampling, how the joined
estimate gets its PVF, ...) applied to an :class:`~faults.avf.context.AvfContext` (program,
inputs, hardware, dtype, criterion). :func:`run_study` writes into ``out_dir`` (every file
atomically; trials go to ``avf.sqlite`` as they finish, so an interrupted study resumes and
never loses finished trials):

* ``avf.sqlite``        direct site trials (:mod:`faults.avf.store`), with the study identity
  (configuration, hardware, model and input fingerprints): resuming into another study is a
  one-line refusal;
* ``avf_summary.json``  the :class:`StudyResult` (per structure direct / joined AVF with
  intervals, FIT rows, the gap explanation);
* ``avf_table.csv``     one row per structure (direct and joined side by side);
* ``fit_table.csv``     SDC / DUE FIT per structure and in total (:mod:`faults.avf.fit`);
* ``joined_terms.csv``  per (structure, parameter): ACE bit-cycles, PVF, AVF contribution;
* ``occupancy.npz``     live / dead bits over time per structure (for the report's timelines).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


from faults.common import stats
from faults.common.files import csv_text, json_text, write_npz_atomic, write_text_atomic
from faults.avf.context import AvfContext, AvfError
from faults.avf.direct import SAMPLING_MODES, DirectAvf, local_executor, occupied, run_direct, summarize_direct
from faults.avf.fit import DEFAULT_FIT_PER_MBIT, FitRow, fit_table, raw_rates
from faults.avf.joined import (JoinedAvf, PvfEntry, gap_explanation, join_weights, joined_avf, pvf_table,
                               ratio_interval, run_pvf)
from faults.avf.sites import SITE_STRUCTURES
from faults.avf.store import AvfStore

PVF_STRATA = ("param", "layer", "component", "group")
SUMMARY_FILE = "avf_summary.json"


@dataclass(frozen=True)
class JoinConfig:
    """Where the joined estimate takes its PVF from.

    Attributes:
        enabled: compute the joined estimate at all.
        pvf_dir: reuse the PVF campaign in this folder (same program, inputs, dtype); else one
            is run in ``OUT/pvf`` with ``pvf_trials`` single bit flips per stratum ``pvf_by``.
        pvf_by: PVF strata (a parameter takes its stratum's PVF).
    """

    enabled: bool = True
    pvf_trials: int = 200
    pvf_by: str = "param"
    pvf_dir: str | None = None

    def __post_init__(self) -> None:
        if self.pvf_by not in PVF_STRATA:
            raise AvfError(f"pvf_by {self.pvf_by!r}: choose {', '.join(PVF_STRATA)}")
        if self.pvf_trials < 1:
            raise AvfError(f"pvf_trials must be >= 1, got {self.pvf_trials}")


@dataclass(frozen=True)
class StudyConfig:
    """An AVF study's definition (validated on construction).

    Attributes:
        structures: any of ``sites.SITE_STRUCTURES``.
        trials: direct site trials per structure (may grow between runs).
        seed: trial ``t`` of structure s draws from ``SeedSequence([seed, s, t])``.
        inputs_per_trial: evaluation samples per site (0 = the whole batch, needed for per-event
            AVF and FIT).
        scrub_interval: inferences run back to back between two scrubs/reloads of HBM (1 = one
            cold inference); an HBM upset persists for the rest of the window.
        sampling: "uniform" over bits × cycles, or "occupied" bit-cycles (scaled exactly).
        confidence, method: intervals (Wilson or Clopper–Pearson).
        fit_per_mbit: raw FIT/Mbit overrides, (structure, rate) pairs.
        join: the joined estimate's PVF source.
        chunk_size: trials per chunk (fixed partition; part of the study's identity).
    """

    structures: tuple[str, ...] = ("weight_sram", "hbm", "pe")
    trials: int = 1000
    seed: int = 0
    inputs_per_trial: int = 0
    scrub_interval: int = 1
    sampling: str = "uniform"
    confidence: float = 0.95
    method: str = "wilson"
    fit_per_mbit: tuple[tuple[str, float], ...] = ()
    join: JoinConfig = field(default_factory=JoinConfig)
    chunk_size: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "structures", tuple(self.structures))
        object.__setattr__(self, "fit_per_mbit", tuple((str(s), float(r)) for s, r in self.fit_per_mbit))
        bad = [s for s in self.structures if s not in SITE_STRUCTURES]
        if bad or not self.structures:
            raise AvfError(f"structures {list(self.structures)}: choose from {', '.join(SITE_STRUCTURES)}")
        if len(set(self.structures)) != len(self.structures):
            raise AvfError(f"structures {list(self.structures)}: each structure once")
        if self.trials < 1:
            raise AvfError(f"trials must be >= 1, got {self.trials}")
        if self.seed < 0:
            raise AvfError(f"seed must be >= 0, got {self.seed}")
        if self.inputs_per_trial < 0:
            raise AvfError(f"inputs_per_trial must be >= 0 (0 = the whole batch), got {self.inputs_per_trial}")
        if self.scrub_interval < 1:
            raise AvfError(f"scrub_interval must be >= 1 inference, got {self.scrub_interval}")
        if self.sampling not in SAMPLING_MODES:
            raise AvfError(f"sampling {self.sampling!r}: choose {', '.join(SAMPLING_MODES)}")
        stats.method_name(self.method)
        if not 0.0 < self.confidence < 1.0:
            raise AvfError(f"confidence must be in (0, 1), got {self.confidence}")
        for s, rate in self.fit_per_mbit:
            if s not in DEFAULT_FIT_PER_MBIT or not 0 <= rate < float("inf"):
                raise AvfError(f"fit_per_mbit {s}={rate}: structure in {', '.join(DEFAULT_FIT_PER_MBIT)}, rate >= 0")
        if self.chunk_size < 1:
            raise AvfError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.trials > 2**62 or self.chunk_size > 65536:  # trial indices are SQLite INTEGERs
            raise AvfError(f"trials must be <= 2^62 and chunk_size <= 65536, got {self.trials} and {self.chunk_size}")

    def identity(self, ctx: AvfContext) -> dict[str, Any]:
        """What stored site trials depend on: any change makes them another study's trials."""
        return {"hardware": ctx.hw.to_dict(), "dtype": ctx.dtype, "criterion": ctx.criterion.text,
                "nonfinite": ctx.nonfinite, "bank": _bank_identity(ctx.bank),
                "output": ctx.output, "seed": self.seed, "inputs_per_trial": self.inputs_per_trial,
                "scrub_interval": self.scrub_interval,
                "sampling": self.sampling, "chunk_size": self.chunk_size, "batch": ctx.batch,
                "program": ctx.program_fingerprint, "inputs": ctx.inputs_fingerprint}


@dataclass(frozen=True)
class StructureResult:
    """Direct AVF of one structure and, with a PVF campaign, both joined estimates (full-PVF
    upper bound, read-weighted) and direct ÷ read-weighted with its MOVER interval;
    ``bits`` = sampled bits (HBM: parameter region)."""

    structure: str
    bits: int
    capacity_bits_full: int
    direct: DirectAvf
    joined: JoinedAvf | None = None
    joined_rw: JoinedAvf | None = None
    ratio: tuple[float, float, float] = (float("nan"), float("nan"), float("nan"))
    explanation: str = ""


@dataclass(frozen=True)
class StudyResult:
    """What ``avf_summary.json`` holds (also returned by :func:`run_study`)."""

    config: dict[str, Any]
    total_cycles: int
    structures: dict[str, StructureResult]
    fit: tuple[FitRow, ...]
    confidence: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "total_cycles": self.total_cycles, "confidence": self.confidence,
                "method": self.method, "fit": [dataclasses.asdict(f) for f in self.fit],
                "structures": {s: {"bits": r.bits, "capacity_bits_full": r.capacity_bits_full,
                                   "direct": dataclasses.asdict(r.direct),
                                   **({"joined": _joined_dict(r.joined), "joined_rw": _joined_dict(r.joined_rw),
                                       "ratio": list(r.ratio), "explanation": r.explanation}
                                      if r.joined is not None else {})}
                               for s, r in self.structures.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StudyResult":
        structures = {}
        for s, e in data["structures"].items():
            joined = JoinedAvf(**e["joined"]) if "joined" in e else None
            joined_rw = JoinedAvf(**e["joined_rw"]) if "joined_rw" in e else None
            ratio = tuple(float(x) for x in e.get("ratio", (float("nan"),) * 3))
            structures[s] = StructureResult(s, int(e["bits"]), int(e["capacity_bits_full"]),
                                            DirectAvf(**e["direct"]), joined, joined_rw, ratio,
                                            e.get("explanation", ""))
        return cls(dict(data["config"]), int(data["total_cycles"]), structures,
                   tuple(FitRow(**f) for f in data["fit"]), float(data["confidence"]), str(data["method"]))

    @classmethod
    def load(cls, out_dir: str | Path) -> "StudyResult":
        path = Path(out_dir) / SUMMARY_FILE
        if not path.is_file():
            raise AvfError(f"{out_dir}: no AVF study ({SUMMARY_FILE}) there")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise AvfError(f"{path}: not a readable AVF summary ({type(exc).__name__}: {exc})") from None

    def table(self):
        """pandas DataFrame: one row per structure, direct and joined AVF with intervals."""
        import pandas as pd

        return pd.DataFrame(structure_rows(self))

    def fit_table(self):
        """pandas DataFrame: SDC / DUE FIT per structure and in total."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(f) for f in self.fit])


def _joined_dict(j: JoinedAvf | None) -> dict[str, Any] | None:
    return None if j is None else {k: v for k, v in dataclasses.asdict(j).items() if k != "per_param"}


def _bank_identity(bank) -> dict | None:
    if bank is None:
        return None
    return {"params": sorted(bank.params), "weight_sram_bytes": bank.weight_sram_bytes, "hbm": bank.hbm}


def structure_rows(result: StudyResult) -> list[dict[str, Any]]:
    """Rows of ``avf_table.csv``: per-sample direct AVF, both joins and the ratio, per-event AVF."""
    nan = float("nan")
    rows = []
    for s, r in result.structures.items():
        d, j, w = r.direct, r.joined, r.joined_rw
        rows.append({"structure": s, "bits": r.bits, "trials": d.trials, "unrun": d.unrun,
                     "live_fraction": d.live_fraction, "ace_fraction": d.ace_fraction,
                     "direct_avf": d.avf_sdc, "direct_lo": d.sdc_lo, "direct_hi": d.sdc_hi,
                     "joined_rw_avf": w.avf_sdc if w else nan, "joined_rw_lo": w.sdc_lo if w else nan,
                     "joined_rw_hi": w.sdc_hi if w else nan,
                     "joined_avf": j.avf_sdc if j else nan, "joined_lo": j.sdc_lo if j else nan,
                     "joined_hi": j.sdc_hi if j else nan,
                     "ratio": r.ratio[0], "ratio_lo": r.ratio[1], "ratio_hi": r.ratio[2],
                     "event_avf": d.avf_event, "event_lo": d.event_lo, "event_hi": d.event_hi,
                     "direct_due": d.avf_due, "event_due": d.avf_due_event,
                     "joined_due": j.avf_due if j else nan, "window": d.window})
    return rows


def study_pvf(ctx: AvfContext, config: StudyConfig, out_dir: str | Path, workers: int = 1,
              progress: bool = False) -> dict[str, PvfEntry] | None:
    """PVF per parameter for the joined estimate: from ``join.pvf_dir`` if given, else run (or
    resume) the campaign in ``out_dir/pvf``; None when the join is disabled."""
    join = config.join
    if not join.enabled:
        return None
    if join.pvf_dir:
        if not (Path(join.pvf_dir) / "trials.sqlite").is_file():
            raise AvfError(f"--pvf {join.pvf_dir}: no PVF campaign (trials.sqlite) there")
        return pvf_table(ctx, str(join.pvf_dir), join.pvf_by)
    return run_pvf(ctx, str(Path(out_dir) / "pvf"), join.pvf_trials, config.seed, join.pvf_by, workers, progress)


def run_study(ctx: AvfContext, config: StudyConfig, out_dir: str | Path, *,
              pvf: Mapping[str, PvfEntry] | None = None, extra_identity: Mapping[str, Any] | None = None,
              settings: Mapping[str, Any] | None = None, progress: bool = False, workers: int = 1,
              backend: str = "local") -> StudyResult:
    """Run (or resume) the study; write and return its :class:`StudyResult`.

    Args:
        pvf: PVF per parameter for the joined estimate (:func:`study_pvf`); None = direct only.
        extra_identity: more identity keys (e.g. the swept config key and value).
        settings: display-only values recorded beside the identity (e.g. the model's name).
        progress: a bar per structure on stderr (rate, ETA, running direct AVF).
        workers, backend: where the direct trials run (local processes or Ray); the stored
            rows are the same whatever they are (:mod:`faults.avf.direct`).
    """
    out = Path(out_dir)
    identity = {**config.identity(ctx), **(extra_identity or {})}
    all_settings = {"trials": config.trials, "structures": list(config.structures), **(settings or {})}
    rates = raw_rates(ctx.hw, dict(config.fit_per_mbit))
    per: dict[str, StructureResult] = {}
    terms = []
    with AvfStore(out, identity, settings=all_settings) as store, \
            local_executor(ctx, workers, backend, key=store.meta("identity_hash") or "avf") as executor:
        for s in config.structures:
            bar = _bar(ctx, config, s, store) if progress else None
            try:
                rows = run_direct(ctx, s, config.trials, config.seed, store, config.inputs_per_trial,
                                  config.chunk_size, mode=config.sampling, window=config.scrub_interval,
                                  executor=executor, on_rows=bar)
            finally:
                if bar:
                    bar.close()
            d = summarize_direct(ctx, s, rows, config.confidence, config.method, config.sampling)
            joined = joined_rw = None
            ratio, explanation = (float("nan"),) * 3, ""
            if pvf is not None:
                window = config.scrub_interval
                joined = joined_avf(ctx, s, pvf, "full", window, config.confidence)
                joined_rw = joined_avf(ctx, s, pvf, "read_weighted", window, config.confidence)
                scale = occupied(ctx, s)[2] if config.sampling == "occupied" and s != "hbm" else 1.0
                ratio = ratio_interval([r["window_sdc"] for r in rows], [r["window_inputs"] for r in rows], scale,
                                       join_weights(ctx, s, "read_weighted", window), pvf,
                                       float(ctx.resolver.capacity_bits(s)) * ctx.total_cycles,
                                       config.confidence)
                explanation = gap_explanation(d, joined, joined_rw, ratio, rows)
                rw_terms = {p: (a, c) for p, a, _, c in joined_rw.per_param}
                terms += [{"structure": s, "param": p, "layer": ctx.layer_of[p], "ace_bit_cycles": a,
                           "ace_read_weighted": rw_terms.get(p, (0.0, 0.0))[0], "pvf": v, "avf_contribution": c,
                           "avf_contribution_rw": rw_terms.get(p, (0.0, 0.0))[1]}
                          for p, a, v, c in joined.per_param]
            per[s] = StructureResult(s, ctx.resolver.capacity_bits(s), int(ctx.schedule.residency.capacity_bits[s]),
                                     d, joined, joined_rw, ratio, explanation)
    avf_for_fit = {s: {k: getattr(r.direct, k) for k in ("avf_sdc", "sdc_lo", "sdc_hi", "avf_due", "due_lo",
                                                          "due_hi", "avf_event", "event_lo", "event_hi",
                                                          "avf_due_event", "due_event_lo", "due_event_hi")}
                   for s, r in per.items()}
    fits = fit_table(avf_for_fit, {s: r.bits for s, r in per.items()}, rates)
    result = StudyResult({**identity, **all_settings}, ctx.total_cycles, per, tuple(fits),
                         config.confidence, config.method)
    write_text_atomic(out / "avf_table.csv", csv_text(structure_rows(result)))
    write_text_atomic(out / "fit_table.csv", csv_text([dataclasses.asdict(f) for f in fits]))
    write_text_atomic(out / "joined_terms.csv", csv_text(terms))
    occ = {}
    for s in per:
        cyc, live, dead = ctx.schedule.residency.occupancy(s, 400)
        occ[f"{s}.cycles"], occ[f"{s}.live"], occ[f"{s}.dead"] = cyc, live, dead
    write_npz_atomic(out / "occupancy.npz", occ)
    write_text_atomic(out / SUMMARY_FILE, json_text(result.to_dict()))
    return result


class _DirectBar:
    """A tqdm bar on stderr for one structure's direct trials: rate, ETA and the running direct
    SDC AVF (per sample, with its interval; refreshed at most every half second)."""

    def __init__(self, ctx: AvfContext, config: StudyConfig, structure: str, stored: list[dict]) -> None:
        from tqdm import tqdm

        self.config = config
        self.scale = occupied(ctx, structure)[2] if config.sampling == "occupied" and structure != "hbm" else 1.0
        self.sdc = [r["window_sdc"] for r in stored]
        self.inputs = [r["window_inputs"] for r in stored]
        self.shown = 0.0
        self.bar = tqdm(total=config.trials, initial=len(stored), desc=f"avf {structure}", unit="site",
                        file=sys.stderr, dynamic_ncols=True)
        self._postfix()

    def __call__(self, rows: list[dict]) -> None:
        self.sdc += [r["window_sdc"] for r in rows]
        self.inputs += [r["window_inputs"] for r in rows]
        self.bar.update(len(rows))
        if time.monotonic() - self.shown >= 0.5 or len(self.sdc) >= self.config.trials:
            self._postfix()

    def _postfix(self) -> None:
        self.shown = time.monotonic()
        if not self.sdc:
            return
        est = stats.clustered_rate(self.sdc, self.inputs, self.config.confidence, self.config.method)
        f = self.scale
        self.bar.set_postfix_str(f"AVF {f * est.pvf:.3g} [{f * est.lo:.3g},{f * est.hi:.3g}] "
                                 f"SDC {est.k}/{est.n} outputs", refresh=False)

    def close(self) -> None:
        self._postfix()
        self.bar.close()


def _bar(ctx: AvfContext, config: StudyConfig, structure: str, store: AvfStore) -> _DirectBar:
    stored = [r for r in store.rows(structure) if r["trial"] < config.trials]
    return _DirectBar(ctx, config, structure, stored)
