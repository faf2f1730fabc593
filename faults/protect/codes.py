"""Error-correcting codes as data, with their exact decoder behaviour, and the spec parser.

Every code is a systematic binary linear code (:class:`~faults.protect.linear.BinaryLinearCode`):
``name`` (its canonical spec), ``data_bits`` (k), ``code_bits`` (n), ``check_bits`` (n − k),
``encode(data) -> codeword bits``, ``decode(error_pattern) -> DecodeResult`` and the vectorised
``decode_many(patterns) -> DecodeBatch``. An error pattern is a boolean mask over the n stored
bits (data bits 0..k−1, then the check bits); outcomes are ``clean``, ``corrected``,
``detected``, ``undetected``, ``miscorrected`` (exact rules in :mod:`faults.protect.linear`).

=====================  =====================================================  ================
spec                   code                                                   check bits
=====================  =====================================================  ================
``none[:K]``           no protection, K data bits (default 64)                0
``parity:K``           one even-parity bit per K-bit word, 1 ≤ K ≤ 4096       1
``secded:K``           Hsiao SECDED, K ∈ {8,16,32,64,128,256}: (13,8),        5,6,7,8,9,10
                       (22,16), (39,32), (72,64), (137,128), (266,256)
``dected:K``           BCH t=2 + overall parity, same K: (19,8), (27,16),     11,11,13,15,17,19
                       (45,32), (79,64), (145,128), (275,256)
``symbol:K+R``         Reed–Solomon over GF(2^8), K data symbols of 8 bits,   8·R
                       R ∈ {2, 3} check symbols, K + R ≤ 255 (``16+3`` =
                       RS(19,16) SSC-DSD chipkill class; ``16+2`` SSC)
=====================  =====================================================  ================

Selective protection (``parity``, ``secded`` and ``dected`` only):
``KIND:K,bits=HI-LO[+HI-LO|+B ...][,elem=E]`` protects, in each E-bit element of the K-bit word
(E must divide K; default ``elem=32``, i.e. fp32; use ``elem=16`` for fp16/bf16), the bits whose
position within the element is in the listed ranges, with the inner code over exactly those
bits (:class:`~faults.protect.selective.SelectiveCode`). Ranges are written high bit first, as
in hardware notation: ``secded:64,bits=31-23`` = sign and exponent of both fp32 elements of a
64-bit word, 18 bits under Hsiao (24,18): 6 check bits; ``parity:32,bits=15-10,elem=16``.

Anything else — an unknown code, a width not listed, a reversed (low-high) or overlapping range,
an unknown or repeated option — raises :class:`~faults.protect.linear.CodeError`, one line.

References: Hsiao 1970 (SECDED); Lin & Costello 2004, MacWilliams & Sloane 1977 (BCH, RS);
Reed & Solomon 1960.
"""
from __future__ import annotations

import re

from faults.protect.bch import DectedCode
from faults.protect.linear import (CLEAN, CORRECTED, DETECTED, MISCORRECTED, OUTCOMES, UNDETECTED,
                                   BinaryLinearCode, CodeError, DecodeBatch, DecodeResult)
from faults.protect.parity import NoCode, ParityCode
from faults.protect.secded import SecdedCode
from faults.protect.selective import SelectiveCode
from faults.protect.symbol import ReedSolomonCode

__all__ = ["OUTCOMES", "CLEAN", "CORRECTED", "DETECTED", "UNDETECTED", "MISCORRECTED", "CODE_KINDS",
           "BinaryLinearCode", "CodeError", "DecodeBatch", "DecodeResult", "NoCode", "ParityCode",
           "SecdedCode", "DectedCode", "ReedSolomonCode", "SelectiveCode", "parse_scheme_code"]

CODE_KINDS = ("none", "parity", "secded", "dected", "symbol")
ECC_WIDTHS = (8, 16, 32, 64, 128, 256)
DEFAULT_ELEMENT_BITS = 32


def _integer(text: str, what: str, spec: str) -> int:
    text = text.strip()
    if not re.fullmatch(r"[0-9]+", text):
        raise CodeError(f"code {spec!r}: {what} must be a non-negative integer, got {text!r}")
    return int(text)


def _positions(text: str, spec: str) -> tuple[int, ...]:
    """``HI-LO[+HI-LO|+B ...]`` → the positions, rejecting reversed and overlapping ranges."""
    positions: list[int] = []
    for part in text.split("+"):
        hi_text, dash, lo_text = part.partition("-")
        hi = _integer(hi_text, "a bit position", spec)
        lo = _integer(lo_text, "a bit position", spec) if dash else hi
        if hi < lo:
            raise CodeError(f"code {spec!r}: reversed bit range {part.strip()!r}; "
                            f"write the high bit first ({lo}-{hi})")
        span = range(lo, hi + 1)
        if set(span) & set(positions):
            raise CodeError(f"code {spec!r}: bit range {part.strip()!r} overlaps another")
        positions += span
    return tuple(positions)


def _options(parts: list[str], kind: str, spec: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in parts:
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not key or not value:
            raise CodeError(f"code {spec!r}: option {part.strip()!r} is not key=value")
        if key not in ("bits", "elem"):
            raise CodeError(f"code {spec!r}: unknown option {key!r} (options: bits=HI-LO, elem=E)")
        if key in options:
            raise CodeError(f"code {spec!r}: option {key!r} given twice")
        options[key] = value
    if options and kind not in ("parity", "secded", "dected"):
        raise CodeError(f"code {spec!r}: selective protection (bits=...) needs parity, secded or dected")
    if options and "bits" not in options:
        raise CodeError(f"code {spec!r}: elem= needs bits=HI-LO")
    return options


def parse_scheme_code(text: str) -> BinaryLinearCode:
    """The code of a spec such as ``secded:64`` or ``secded:64,bits=31-23`` (see module doc)."""
    spec = str(text).strip()
    try:
        return _parse(spec)
    except CodeError as error:
        message = str(error)
        raise CodeError(message if message.startswith(("code ", "unknown code")) else
                        f"code {spec!r}: {message}") from None


def _parse(spec: str) -> BinaryLinearCode:
    head, *rest = spec.lower().split(",")
    kind, colon, argument = (s.strip() for s in head.partition(":"))
    if kind not in CODE_KINDS:
        raise CodeError(f"unknown code {spec!r}; choose one of none, parity:K, secded:K, dected:K, symbol:K+R")
    if colon and not argument:
        raise CodeError(f"code {spec!r}: nothing after ':'")
    options = _options(rest, kind, spec)
    if kind == "none":
        return NoCode(_integer(argument, "the data width", spec) if argument else 64)
    if not argument:
        example = "symbol:16+3" if kind == "symbol" else f"{kind}:64"
        raise CodeError(f"code {spec!r}: give the width, e.g. {example}")
    if kind == "symbol":
        data_text, plus, check_text = argument.partition("+")
        if not plus:
            raise CodeError(f"code {spec!r}: write data+check symbols, e.g. symbol:16+3")
        return ReedSolomonCode(_integer(data_text, "the data symbols", spec),
                               _integer(check_text, "the check symbols", spec))
    width = _integer(argument, "the data width", spec)
    if kind in ("secded", "dected") and width not in ECC_WIDTHS:
        raise CodeError(f"code {spec!r}: {kind} width {width} not supported; "
                        f"choose one of {', '.join(map(str, ECC_WIDTHS))}")
    if not options:
        return {"parity": ParityCode, "secded": SecdedCode, "dected": DectedCode}[kind](width)
    element = _integer(options.get("elem", str(DEFAULT_ELEMENT_BITS)), "elem", spec)
    if element < 1 or width % element:
        raise CodeError(f"code {spec!r}: elem={element} must divide the {width}-bit word")
    positions = _positions(options["bits"], spec)
    if max(positions) >= element:
        raise CodeError(f"code {spec!r}: bit {max(positions)} outside a {element}-bit element")
    return SelectiveCode(kind, width, element, positions)
