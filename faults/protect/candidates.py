"""What the placement search may choose from: schemes per structure, protected-bank options.

Default scheme candidates (:func:`default_candidates`), per structure, for a stored format of
E-bit elements (fp32 32, fp16/bf16 16, int8 8) and an upset model whose largest cluster is D
cells:

* memories (``weight_sram``, ``embedding_sram``): none; parity:64 (halt, and ``policy=zero`` —
  weight masking); secded:64; dected:64; selective ``secded:64,bits=HIGH,elem=E`` and
  ``parity:64,bits=HIGH,elem=E`` where HIGH is the sign and exponent (fp32 31-23, fp16 15-10,
  bf16 15-7) or, for int8, the sign and most significant bit (7-6); with D > 1 also secded,
  dected and selective secded at ``interleave=D``;
* ``hbm``: none; secded:64 (and at ``interleave=D``); dected:64; symbol:16+2; symbol:16+3;
* ``pe`` (one weight register = one word of E bits): none; parity:E; secded:E.

Decode latency per read of the default candidates (:data:`LATENCY_CYCLES`; an assumption,
stated in the search's output; given candidates take exactly their ``latency=C``, 0 if absent):
none and parity 0 cycles, SECDED 1, DECTED 2, symbol ECC 2 (selective codes: their inner code's). PE registers get no latency (the
register check is taken as pipelined).

Protected-bank options for the weight SRAM (:func:`bank_parameter_sets`): the parameters
ranked by the predicted SDC contribution per stored byte — Σ read-weighted ACE × per-bit PVF
(:mod:`faults.protect.predict`) in the unprotected weight SRAM ÷ the parameter's bytes — and
the shortest prefixes covering given shares of that contribution; or a fixed set chosen by a
glob over a label (``component=…``, ``layer=…``, ``param=…``).
"""
from __future__ import annotations

import fnmatch
from dataclasses import replace
from typing import Mapping, Sequence

from accelsim.schedule.placement import ProtectedBank

from faults.avf.context import AvfContext
from faults.avf.joined import join_weights
from faults.common.scales import base_of
from faults.protect.scheme import Scheme, SchemeError, parse_scheme
from faults.protect.upsets import UpsetModel
from faults.pvf.targets import labels, parameter_spec

ELEMENT_BITS = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8}
HIGH_BITS = {"fp32": "31-23", "fp16": "15-10", "bf16": "15-7", "int8": "7-6"}
LATENCY_CYCLES = {"none": 0, "parity": 0, "secded": 1, "dected": 2, "symbol": 2}
BANK_POLICY_LABELS = ("component", "layer", "param")


def with_default_latency(scheme: Scheme, structure: str) -> Scheme:
    """``scheme`` with the assumed decode latency of its code unless one was given (PE: none)."""
    if scheme.latency_cycles or structure == "pe":
        return scheme
    return replace(scheme, latency_cycles=LATENCY_CYCLES[scheme.kind])


def default_candidates(structure: str, dtype: str, upset: UpsetModel) -> tuple[Scheme, ...]:
    """The default candidate schemes of ``structure`` (module docstring)."""
    element = ELEMENT_BITS[dtype]
    high = f"bits={HIGH_BITS[dtype]},elem={element}"
    degree = max(upset.sizes)
    if structure == "pe":
        specs = [f"none:{element}", f"parity:{element}", f"secded:{element}"]
    elif structure == "hbm":
        specs = ["none", "secded:64", "dected:64", "symbol:16+2", "symbol:16+3"]
        specs += [f"secded:64,interleave={degree}"] if degree > 1 else []
    else:
        specs = ["none", "parity:64", "parity:64,policy=zero", "secded:64", "dected:64",
                 f"secded:64,{high}", f"parity:64,{high}"]
        specs += [f"{s},interleave={degree}" for s in ("secded:64", "dected:64", f"secded:64,{high}")] \
            if degree > 1 else []
    return tuple(with_default_latency(parse_scheme(f"{structure}={s}")[1], structure) for s in specs)


def parse_candidates(text: str) -> tuple[str, tuple[Scheme, ...]]:
    """``"weight_sram=none|secded:64,latency=1|secded:64,bits=31-23"`` -> (structure, schemes);
    each exactly as given (decode latency 0 unless ``latency=C``)."""
    structure, sep, rest = text.partition("=")
    structure = structure.strip()
    specs = [s.strip() for s in rest.split("|")]
    if not sep or not all(specs):
        raise SchemeError(f"--candidates {text!r}: use STRUCTURE=SCHEME|SCHEME|... "
                          "(e.g. weight_sram=none|secded:64|secded:64,bits=31-23)")
    schemes = []
    for spec in specs:
        area, scheme = parse_scheme(f"{structure}={spec}")
        if area == "weight_sram.bank":
            raise SchemeError(f"--candidates {text!r}: the bank's scheme is --bank-scheme")
        schemes.append(scheme)
    if len({s.name for s in schemes}) != len(schemes):
        raise SchemeError(f"--candidates {text!r}: a scheme is listed twice")
    return structure, tuple(schemes)


def parse_bank_scheme(text: str) -> Scheme:
    """The protected bank's scheme from a spec (``secded:64,latency=1``; latency as given)."""
    return parse_scheme(f"weight_sram.bank={text}")[1]


def contribution_ranking(ctx: AvfContext, pvf) -> list[tuple[str, float, int]]:
    """(parameter, predicted SDC contribution in bit-cycles × PVF, stored bytes) of every parameter
    resident in the weight SRAM, by contribution per byte, highest first (module docstring)."""
    weights = join_weights(ctx, "weight_sram", "read_weighted")
    contribution: dict[str, float] = {}
    for name, bit_cycles in weights.items():
        contribution[base_of(name) or name] = contribution.get(base_of(name) or name, 0.0) \
            + bit_cycles * pvf.mean(ctx, name)
    nbytes = {name: ctx.program.parameters[name].size * ctx.hw.precision.weight_bytes
              for name in contribution}
    ranked = sorted(contribution, key=lambda n: (-contribution[n] / max(1, nbytes[n]), n))
    return [(n, contribution[n], nbytes[n]) for n in ranked]


def bank_parameter_sets(ctx: AvfContext, pvf, policy: str, coverages: Sequence[float]) -> list[tuple[str, frozenset]]:
    """(label, parameters) for the bank options of ``policy`` (module docstring)."""
    if policy == "vulnerable":
        ranking = contribution_ranking(ctx, pvf)
        total = sum(c for _, c, _ in ranking)
        sets: dict[frozenset, str] = {}
        for share in coverages:
            chosen, acc = [], 0.0
            for name, c, _ in ranking:
                if total > 0 and acc >= share * total - 1e-12 * total:
                    break
                chosen.append(name)
                acc += c
            key = frozenset(chosen)
            if key and key not in sets:
                sets[key] = f"top {len(chosen)} by PVF×ACE/byte ({100 * share:g}% of the contribution)"
        return [(label, params) for params, label in sets.items()]
    key, eq, pattern = policy.partition("=")
    if not eq or key not in BANK_POLICY_LABELS or not pattern:
        raise SchemeError(f"--bank-policy {policy!r}: use vulnerable, component=GLOB, layer=GLOB or param=GLOB")
    params = frozenset(name for name in ctx.program.parameters
                       if fnmatch.fnmatchcase(name if key == "param" else labels(parameter_spec(ctx.program, name))[key],
                                              pattern))
    if not params:
        raise SchemeError(f"--bank-policy {policy!r}: no parameter matches")
    return [(f"{key} {pattern} ({len(params)} parameters)", params)]


def bank_bytes(ctx: AvfContext, fraction: float) -> int:
    """The bank size nearest ``fraction`` of the weight SRAM that the placement accepts (whole
    words per bank and slot; at least one unit, below the SRAM's size)."""
    sram = ctx.hw.weight_sram
    unit = sram.word_bytes * sram.banks * sram.slots
    if not 0 < fraction < 1:
        raise SchemeError(f"bank fraction {fraction:g}: must be in (0, 1)")
    units = max(1, round(fraction * sram.size_bytes / unit))
    size = min(units, (sram.size_bytes - 1) // unit) * unit
    if size <= 0:
        raise SchemeError(f"bank fraction {fraction:g}: the weight SRAM of {sram.size_bytes} B has no room "
                          f"for a bank of whole {unit} B units")
    return size


def make_bank(ctx: AvfContext, params: frozenset, fraction: float) -> ProtectedBank:
    bank = ProtectedBank(params, bank_bytes(ctx, fraction))
    bank.check(ctx.hw)
    return bank


def structure_candidates(structures: Sequence[str], dtype: str, upset: UpsetModel,
                         given: Mapping[str, tuple[Scheme, ...]]) -> dict[str, tuple[Scheme, ...]]:
    """Candidates per structure: the given ones, else the defaults."""
    unknown = sorted(set(given) - set(structures))
    if unknown:
        raise SchemeError(f"--candidates for {unknown[0]}, which is not searched (--structure)")
    return {s: given.get(s) or default_candidates(s, dtype, upset) for s in structures}
