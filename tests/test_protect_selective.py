"""Selective protection (codes over chosen bit ranges of each element) and the code-spec parser's
refusals, with expected values derived in the tests."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from accelsim.errors import UserError
from faults.protect.codes import CodeError, SecdedCode, SelectiveCode, parse_scheme_code


# ---------------------------------------------------------------- selective protection

def test_selective_secded_over_sign_and_exponent():
    code = parse_scheme_code("secded:64,bits=31-23")
    assert isinstance(code, SelectiveCode) and code.inner == SecdedCode(18) and code.check_bits == 6
    protected = list(range(23, 32)) + list(range(55, 64))
    assert code.protected_bits.tolist() == protected
    single = code.decode_many(np.eye(70, dtype=bool))
    expected = np.where(np.isin(np.arange(70), protected + list(range(64, 70))), "corrected", "undetected")
    assert np.array_equal(single.outcomes, expected)
    unprotected = np.eye(70, dtype=bool)[:, :64] & (expected == "undetected")[:, None]
    assert np.array_equal(single.data_errors, unprotected)

    def result(*bits):
        e = np.zeros(70, dtype=bool)
        e[list(bits)] = True
        return code.decode(e)

    assert result(30, 60).outcome == "detected"                       # two protected bits
    assert result(30, 64).outcome == "detected"                       # protected + check bit
    mixed = result(30, 5)                                             # protected bit fixed, bit 5 not
    assert mixed.outcome == "undetected" and np.nonzero(mixed.data_error)[0].tolist() == [5]
    assert result(5, 6).outcome == "undetected"
    triples = [t for t in itertools.combinations(protected, 3) if result(*t).outcome == "miscorrected"]
    assert triples and all(result(*t).outcome in ("miscorrected", "detected")
                           for t in itertools.combinations(protected, 3))


def test_selective_parity_counts_only_protected_bits():
    code = parse_scheme_code("parity:32,bits=15-10,elem=16")
    assert code.check_bits == 1 and code.protected_bits.tolist() == list(range(10, 16)) + list(range(26, 32))
    e = np.zeros(33, dtype=bool)
    e[[12, 3]] = True   # one protected flip: odd on the protected bits
    assert code.decode(e).outcome == "detected"
    e[26] = True        # two protected flips
    assert code.decode(e).outcome == "undetected"


# ---------------------------------------------------------------- parser errors

@pytest.mark.parametrize("spec,fragment", [
    ("", "unknown code"), ("hamming:64", "unknown code"), ("secded", "give the width"),
    ("secded:48", "not supported"), ("dected:40", "not supported"), ("secded:x", "integer"),
    ("secded:64,bits=23-31", "reversed"), ("secded:64,bits=31-23+25", "overlaps"),
    ("secded:64,bits=40-33", "outside"), ("secded:64,bits=31-23,elem=24", "divide"),
    ("secded:64,elem=32", "needs bits"), ("secded:64,bits=31-23,bits=3", "twice"),
    ("secded:64,color=red", "unknown option"), ("secded:64,bits", "key=value"),
    ("symbol:16", r"data\+check"), ("symbol:16+4", "check symbols"), ("symbol:253+3", "data symbols"),
    ("symbol:16+3,bits=7-0", "selective"), ("none,bits=7-0", "selective"), ("parity:0", "1..4096"),
    ("secded:", "nothing after"),
])
def test_parser_rejects_malformed_specs(spec, fragment):
    with pytest.raises(CodeError, match=fragment) as info:
        parse_scheme_code(spec)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


def test_decode_rejects_wrong_shapes():
    with pytest.raises(CodeError, match="39 bits"):
        SecdedCode(32).decode(np.zeros(38, dtype=bool))
    with pytest.raises(CodeError, match="one pattern"):
        SecdedCode(32).decode(np.zeros((2, 39), dtype=bool))
