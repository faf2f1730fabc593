"""Placement search: protection per structure, component (a protected bank) and bit range that
minimises SDC FIT (or SDC + w·DUE) under a budget, ranked by prediction, confirmed by injection.

1. Per-bit PVF of the model (:func:`faults.protect.predict.bit_pvf`: a whole-batch PVF campaign
   stratified by component × bit, run once into ``OUT/pvf`` or reused).
2. Options per structure (:mod:`faults.protect.candidates`): each candidate scheme, and for the
   weight SRAM protected-bank options (bank size × parameter set, the rest unprotected), each
   re-scheduled with its bank and decode latency. Every option is predicted on ``trials`` upsets
   (:func:`~faults.protect.predict.predict_trials`: exact strike, decode and class; the read-
   weighted join with per-bit PVF for what gets through): SDC and DUE FIT with intervals, check
   bits and the inference's cycles with that option alone.
3. Every combination of one option per structure: check-bit overhead = Σ check bits ÷ Σ data
   bits of the searched structures, cycle overhead ≈ Σ of the options' slowdowns (each measured
   alone; the chosen combination's is re-simulated exactly), objective = Σ SDC FIT + w · Σ DUE
   FIT. The Pareto front (overhead vs objective) and the cheapest-to-tie best combination within
   the budget (:class:`Budget`).
4. The chosen combination is confirmed (:mod:`faults.protect.confirm`).

Approximations (stated in the output): options of the HBM / PE / embedding SRAM are predicted on
the schedule without a bank, although a bank changes everyone's tiling (the confirmation runs
the exact schedule); slowdowns are added.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from accelsim.schedule.workload import ScheduleError

from faults.avf.context import AvfContext, AvfError
from faults.avf.fit import BITS_PER_MBIT, raw_rates
from faults.protect.candidates import LATENCY_CYCLES, bank_parameter_sets, make_bank, parse_bank_scheme, \
    structure_candidates
from faults.protect.geometry import structure_areas
from faults.protect.predict import BitPvf, predict_trials, predicted_rates
from faults.protect.scheme import STRUCTURES, Protection, Scheme, SchemeError, decode_cycles_of
from faults.protect.study import check_trials_for, double_upset_fit
from faults.protect.upsets import SINGLE, UpsetModel

MAX_COMBINATIONS = 200_000
DEFAULT_BANK_SCHEME = "secded:64,latency=1"
BUDGET_KEYS = ("check_bits", "cycles")


@dataclass(frozen=True)
class Budget:
    """Overhead limits as fractions (None: no limit): check bits ÷ data bits, extra cycles ÷ cycles."""

    check_bits: float | None = None
    cycles: float | None = None

    @staticmethod
    def parse(text: str | None) -> "Budget":
        """``"check_bits=5%"``, ``"check_bits=0.05,cycles=2%"`` (``None`` / empty: no limit)."""
        values: dict[str, float] = {}
        for part in (p.strip() for p in (text or "").split(",") if p.strip()):
            key, eq, value = (s.strip() for s in part.partition("="))
            if not eq or key not in BUDGET_KEYS or key in values:
                raise SchemeError(f"--budget {text!r}: use check_bits=P%[,cycles=P%] (each once)")
            try:
                number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
            except ValueError:
                raise SchemeError(f"--budget {text!r}: {value!r} is not a number or percentage") from None
            if not number >= 0:
                raise SchemeError(f"--budget {text!r}: {key} must be >= 0")
            values[key] = number
        return Budget(**values)

    def allows(self, check_overhead: np.ndarray, cycle_overhead: np.ndarray) -> np.ndarray:
        ok = np.ones(np.shape(check_overhead), dtype=bool)
        if self.check_bits is not None:
            ok &= check_overhead <= self.check_bits + 1e-12
        if self.cycles is not None:
            ok &= cycle_overhead <= self.cycles + 1e-12
        return ok

    @property
    def text(self) -> str:
        parts = [f"check_bits={100 * self.check_bits:g}%"] if self.check_bits is not None else []
        parts += [f"cycles={100 * self.cycles:g}%"] if self.cycles is not None else []
        return ",".join(parts) or "none"


@dataclass(frozen=True)
class SearchConfig:
    """What the search may choose and how hard it looks (validated on construction).

    ``trials``: predicted upsets per option; ``confirm_trials``: direct upsets per structure of
    the chosen combination, and of the unprotected chip unless ``confirm_baseline`` is False
    (``trials_for`` / ``confirm_trials_for``: overrides per structure); ``pvf_trials``: PVF trials per (stratum, bit) cell; ``candidates``:
    schemes per structure replacing the defaults; ``bank_fractions``: bank sizes as fractions of
    the weight SRAM (empty: no bank options); ``bank_coverages``: shares of the predicted
    contribution the ranked parameter prefixes cover (policy ``vulnerable``).
    """

    structures: tuple[str, ...] = ("weight_sram", "hbm", "pe")
    upset: UpsetModel = SINGLE
    trials: int = 4000
    confirm_trials: int = 2000
    seed: int = 0
    pvf_trials: int = 100
    pvf_by: str = "component"
    budget: Budget = field(default_factory=Budget)
    due_weight: float = 0.0
    candidates: tuple[tuple[str, tuple[Scheme, ...]], ...] = ()
    bank_fractions: tuple[float, ...] = (0.125, 0.25, 0.4)
    bank_coverages: tuple[float, ...] = (0.5, 0.8, 0.95, 1.0)
    bank_policy: str = "vulnerable"
    bank_scheme: Scheme = field(default_factory=lambda: parse_bank_scheme(DEFAULT_BANK_SCHEME))
    scrub_interval: int = 1
    confidence: float = 0.95
    fit_per_mbit: tuple[tuple[str, float], ...] = ()
    trials_for: tuple[tuple[str, int], ...] = ()
    confirm_trials_for: tuple[tuple[str, int], ...] = ()
    confirm_baseline: bool = True

    def __post_init__(self) -> None:
        for name in ("structures", "candidates", "bank_fractions", "bank_coverages", "fit_per_mbit", "trials_for",
                     "confirm_trials_for"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_trials_for(self.trials_for, self.structures)
        check_trials_for(self.confirm_trials_for, self.structures)
        if not self.structures or any(s not in STRUCTURES for s in self.structures) \
                or len(set(self.structures)) != len(self.structures):
            raise AvfError(f"structures {list(self.structures)}: each of {', '.join(STRUCTURES)} at most once")
        for name in ("trials", "confirm_trials", "pvf_trials", "scrub_interval"):
            if getattr(self, name) < 1:
                raise AvfError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0 or not self.due_weight >= 0:
            raise AvfError("seed and due_weight must be >= 0")
        if any(not 0 < f < 1 for f in self.bank_fractions) or any(not 0 < c <= 1 for c in self.bank_coverages):
            raise AvfError("bank fractions must be in (0, 1) and coverages in (0, 1]")
        if not 0 < self.confidence < 1:
            raise AvfError(f"confidence must be in (0, 1), got {self.confidence}")


@dataclass(frozen=True)
class Option:
    """One choice for one structure, predicted (FIT in failures per 10⁹ h)."""

    structure: str
    label: str
    schemes: tuple[tuple[str, Scheme], ...]
    bank_params: tuple[str, ...]
    bank_bytes: int
    data_bits: int
    check_bits: int
    cycles: int
    trials: int
    sdc_fit: float
    sdc_fit_lo: float
    sdc_fit_hi: float
    due_fit: float
    due_fit_lo: float
    due_fit_hi: float
    false_due_fit: float
    double_upset_fit: float

    def row(self) -> dict:
        out = dataclasses.asdict(self)
        out["schemes"] = " + ".join(f"{a}={s.name}" for a, s in self.schemes)
        out["bank_params"] = " ".join(self.bank_params)
        return out


def predict_option(ctx: AvfContext, structure: str, label: str, protection: Protection, pvf: BitPvf,
                   config: SearchConfig, rate: float, bank=None) -> Option:
    """Predict one option on ``ctx`` (already scheduled with its bank and latency)."""
    areas = structure_areas(ctx, structure, protection)
    trials = dict(config.trials_for).get(structure, config.trials)
    rows = predict_trials(ctx, areas, protection.upset, structure, range(trials), config.seed, pvf)
    r = predicted_rates(rows, config.confidence)
    data, check = sum(a.data_bits for a in areas), sum(a.check_bits for a in areas)
    raw = rate * (data + check) / BITS_PER_MBIT
    schemes = tuple((a.name, a.scheme) for a in areas)
    return Option(structure, label, schemes, tuple(sorted(bank.params)) if bank else (),
                  bank.weight_sram_bytes if bank else 0, data, check, ctx.total_cycles, r.trials,
                  r.sdc * raw, r.sdc_lo * raw, r.sdc_hi * raw, r.due * raw, r.due_lo * raw, r.due_hi * raw,
                  r.false_due * raw, double_upset_fit(ctx, structure, areas, rate, config.scrub_interval))


def search_options(ctx: AvfContext, pvf: BitPvf, config: SearchConfig,
                   progress: Callable[[str], None] = lambda _: None) -> dict[str, list[Option]]:
    """Every option of every searched structure, predicted (module docstring, step 2)."""
    rates = raw_rates(ctx.hw, dict(config.fit_per_mbit))
    candidates = structure_candidates(config.structures, ctx.dtype, config.upset, dict(config.candidates))
    latency_ctx: dict[tuple[str, int], AvfContext] = {}
    options: dict[str, list[Option]] = {}
    for s in config.structures:
        options[s] = []
        for scheme in candidates[s]:
            protection = Protection(((s, scheme),), config.upset)
            decode = decode_cycles_of(protection)
            key = (s, decode.get(s, 0))
            if key not in latency_ctx:
                latency_ctx[key] = ctx.variant(decode_cycles=decode) if decode else ctx
            progress(f"{s}: {scheme.name}")
            options[s].append(predict_option(latency_ctx[key], s, scheme.name, protection, pvf, config, rates[s][0]))
    if "weight_sram" in config.structures and config.bank_fractions:
        rest = Scheme(latency_cycles=0)
        for label, params in bank_parameter_sets(ctx, pvf, config.bank_policy, config.bank_coverages):
            for fraction in config.bank_fractions:
                protection = Protection((("weight_sram", rest), ("weight_sram.bank", config.bank_scheme)),
                                        config.upset)
                try:
                    bank = make_bank(ctx, params, fraction)
                    variant = ctx.variant(bank=bank, decode_cycles=decode_cycles_of(protection))
                except ScheduleError as exc:  # a bank too small for one tile of a parameter placed there
                    progress(f"weight_sram: bank of {fraction:g} skipped ({exc})")
                    continue
                text = f"bank {100 * bank.weight_sram_bytes / ctx.hw.weight_sram.size_bytes:.3g}% " \
                       f"{config.bank_scheme.name}: {label}"
                progress(f"weight_sram: {text}")
                options["weight_sram"].append(predict_option(variant, "weight_sram", text, protection, pvf,
                                                             config, rates["weight_sram"][0], bank))
    return options


@dataclass(frozen=True)
class Combinations:
    """Every combination of one option per structure (arrays over combinations)."""

    structures: tuple[str, ...]
    index: np.ndarray           # int64 [C, S]: option index per structure
    check_overhead: np.ndarray  # float [C]
    cycle_overhead: np.ndarray  # float [C]
    sdc_fit: np.ndarray
    due_fit: np.ndarray
    objective: np.ndarray
    feasible: np.ndarray        # bool [C]
    pareto: np.ndarray          # bool [C]
    chosen: int                 # index into C, -1 when nothing fits the budget


def combine(options: Mapping[str, list[Option]], baseline_cycles: int, config: SearchConfig) -> Combinations:
    """Step 3 of the module docstring."""
    structures = tuple(options)
    sizes = [len(options[s]) for s in structures]
    count = int(np.prod(sizes))
    if count > MAX_COMBINATIONS:
        raise AvfError(f"{count} combinations of candidates (more than {MAX_COMBINATIONS}); give fewer "
                       "--candidates or bank fractions")
    index = np.array(list(itertools.product(*[range(n) for n in sizes])), dtype=np.int64).reshape(count, len(sizes))

    def column(attr: str) -> np.ndarray:
        return sum(np.array([getattr(o, attr) for o in options[s]], dtype=np.float64)[index[:, j]]
                   for j, s in enumerate(structures))

    data, check = column("data_bits"), column("check_bits")
    slow = sum(np.array([o.cycles / baseline_cycles - 1.0 for o in options[s]])[index[:, j]]
               for j, s in enumerate(structures))
    sdc, due = column("sdc_fit"), column("due_fit")
    check_overhead = check / np.maximum(data, 1)
    objective = sdc + config.due_weight * due
    feasible = config.budget.allows(check_overhead, slow)
    order = np.lexsort((slow, check_overhead, objective))
    chosen = next((int(i) for i in order if feasible[i]), -1)
    return Combinations(structures, index, check_overhead, np.asarray(slow, dtype=np.float64), sdc, due, objective,
                        feasible, pareto_front(check_overhead, objective), chosen)


def pareto_front(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Mask of the points no other point beats on both (lower cost and lower value, one strictly)."""
    order = np.lexsort((value, cost))
    front = np.zeros(cost.size, dtype=bool)
    best = np.inf
    for i in order:
        if value[i] < best:
            front[i] = True
            best = value[i]
    return front


def combination_rows(options: Mapping[str, list[Option]], combos: Combinations) -> list[dict]:
    """One row per combination: each structure's option, overheads, FIT, objective, flags."""
    rows = []
    for c in range(combos.index.shape[0]):
        row = {s: options[s][combos.index[c, j]].label for j, s in enumerate(combos.structures)}
        row.update(check_bit_overhead=float(combos.check_overhead[c]), cycle_overhead=float(combos.cycle_overhead[c]),
                   sdc_fit=float(combos.sdc_fit[c]), due_fit=float(combos.due_fit[c]),
                   objective=float(combos.objective[c]), feasible=bool(combos.feasible[c]),
                   pareto=bool(combos.pareto[c]), chosen=c == combos.chosen)
        rows.append(row)
    return rows


def chosen_placement(options: Mapping[str, list[Option]], combos: Combinations, upset: UpsetModel):
    """(Protection, bank or None, chosen options) of the chosen combination."""
    if combos.chosen < 0:
        raise AvfError("no combination of candidates fits the budget; relax --budget or add cheaper candidates")
    picked = [options[s][combos.index[combos.chosen, j]] for j, s in enumerate(combos.structures)]
    schemes = tuple(pair for o in picked for pair in o.schemes if pair[1].code.check_bits or pair[0].endswith("bank")
                    or pair[1].latency_cycles)
    bank = next(((o.bank_params, o.bank_bytes) for o in picked if o.bank_params), None)
    return Protection(schemes, upset), bank, picked


LATENCY_NOTE = "decode latency per read assumed (cycles): " + ", ".join(f"{k} {v}" for k, v in LATENCY_CYCLES.items())


def options_rows(options: Mapping[str, list[Option]]) -> list[dict]:
    return [o.row() for s in options for o in options[s]]
