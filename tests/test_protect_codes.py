"""Codes of faults.protect: check-bit counts, exact decode outcomes, encode round trips
(selective codes and the parser: tests/test_protect_selective.py).

Expected values come from outside the decoders: textbook check-bit counts, a (39,32) parity-check
matrix written out below, bounded-distance decoding by brute force over syndrome dictionaries,
and GF(2^m) arithmetic re-implemented here (bit-serial multiplication, not log tables).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from faults.protect.codes import (OUTCOMES, DectedCode, NoCode, ParityCode, ReedSolomonCode, SecdedCode,
                                  parse_scheme_code)

# Hsiao (39,32): 7 rows, 39 columns (32 data columns of weight 3, then the identity).
H_39_32 = """
101010010100110010100101001100011000000
101001010011001010010100110010100100000
100101001100101001010011001001100010000
010101010010100101001010100110010001000
010100101010010100110100011001010000100
010010101001010011001001100100100000010
001010100101001100101010010011000000001
"""


def _patterns(n: int, weight: int) -> np.ndarray:
    combos = np.asarray(list(itertools.combinations(range(n), weight)), dtype=np.int64)
    e = np.zeros((len(combos), n), dtype=bool)
    e[np.arange(len(combos))[:, None], combos] = True
    return e


def _random_patterns(n: int, weight: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = np.argsort(rng.random((count, n)), axis=1)[:, :weight]
    e = np.zeros((count, n), dtype=bool)
    e[np.arange(count)[:, None], idx] = True
    return e


def _code(name: str) -> int:
    return OUTCOMES.index(name)


def _gf_mul(a: int, b: int, m: int, poly: int) -> int:
    """Bit-serial (Russian-peasant) multiplication in GF(2^m) modulo ``poly``."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        b >>= 1
        a <<= 1
        if a >> m:
            a ^= poly
    return out


def _gf_pow(a: int, k: int, m: int, poly: int) -> int:
    out = 1
    for _ in range(k):
        out = _gf_mul(out, a, m, poly)
    return out


def _bounded_distance(columns: list[int], n: int, radius: int, patterns: np.ndarray):
    """Reference decoder: outcome and flipped bits from a dictionary syndrome -> pattern of weight ≤ radius."""
    table = {}
    for w in range(1, radius + 1):
        for f in itertools.combinations(range(n), w):
            s = 0
            for j in f:
                s ^= columns[j]
            assert s not in table  # radius-balls are disjoint
            table[s] = f
    outcomes, flipped = [], np.zeros_like(patterns)
    for i, e in enumerate(patterns):
        s = 0
        for j in np.nonzero(e)[0]:
            s ^= columns[j]
        if not e.any():
            outcomes.append("clean")
        elif s == 0:
            outcomes.append("undetected")
        elif s not in table:
            outcomes.append("detected")
        else:
            flipped[i, list(table[s])] = True
            outcomes.append("corrected" if set(table[s]) == set(np.nonzero(e)[0]) else "miscorrected")
    return np.asarray(outcomes), flipped


# ---------------------------------------------------------------- sizes and check bits

@pytest.mark.parametrize("spec,k,n", [
    ("none", 64, 64), ("none:32", 32, 32), ("parity:8", 8, 9), ("parity:32", 32, 33), ("parity:64", 64, 65),
    ("secded:32", 32, 39), ("secded:64", 64, 72), ("secded:128", 128, 137),
    ("dected:32", 32, 45), ("dected:64", 64, 79),
    ("symbol:16+3", 128, 152), ("symbol:16+2", 128, 144),
    ("secded:64,bits=31-23", 64, 64 + 6), ("parity:32,bits=15-10,elem=16", 32, 33),
    ("dected:64,bits=31-23", 64, 64 + 11),
])
def test_sizes_and_canonical_names(spec, k, n):
    code = parse_scheme_code(spec)
    assert (code.data_bits, code.code_bits, code.check_bits) == (k, n, n - k)
    assert parse_scheme_code(code.name) == code
    assert code.parity_check_matrix().shape == (n - k, n)


@pytest.mark.parametrize("k", [8, 16, 32, 64, 128, 256])
def test_check_bits_are_the_textbook_minimum(k):
    # SECDED (extended Hamming bound): smallest r with 2^(r-1) >= k + r
    assert SecdedCode(k).check_bits == next(r for r in range(2, 20) if 2 ** (r - 1) >= k + r)
    # DECTED: t=2 BCH in GF(2^m), 2m checks, smallest m with k + 2m <= 2^m - 1; + overall parity
    assert DectedCode(k).check_bits == 2 * next(m for m in range(3, 20) if k + 2 * m <= 2 ** m - 1) + 1
    assert SecdedCode(k).check_bits == {8: 5, 16: 6, 32: 7, 64: 8, 128: 9, 256: 10}[k]
    assert DectedCode(k).check_bits == {8: 11, 16: 11, 32: 13, 64: 15, 128: 17, 256: 19}[k]


# ---------------------------------------------------------------- SECDED

def test_secded_39_32_is_the_written_out_hsiao_matrix():
    h = np.array([[int(c) for c in row] for row in H_39_32.split()], dtype=np.uint8)
    assert np.array_equal(SecdedCode(32).parity_check_matrix(), h)


@pytest.mark.parametrize("k", [32, 64, 128])
def test_secded_is_an_odd_weight_column_code(k):
    h = SecdedCode(k).parity_check_matrix()
    r = h.shape[0]
    weights = h.sum(axis=0)
    assert (weights % 2 == 1).all() and (weights[:k] >= 3).all()
    assert len({tuple(c) for c in h.T}) == k + r
    assert np.array_equal(h[:, k:], np.eye(r, dtype=np.uint8))
    rows = h[:, :k].sum(axis=1)
    assert rows.max() - rows.min() <= 1  # balanced rows (Hsiao); (72,64): 26 ones per row
    if k == 64:
        assert (rows == 26).all()


@pytest.mark.parametrize("k", [32, 64, 128])
def test_secded_single_errors_all_corrected(k):
    code = SecdedCode(k)
    batch = code.decode_many(np.eye(code.code_bits, dtype=bool))
    assert (batch.outcomes == "corrected").all()
    assert not batch.data_errors.any()
    assert np.array_equal(batch.flipped, np.eye(code.code_bits, dtype=bool))


@pytest.mark.parametrize("k", [32, 64, 128])
def test_secded_double_errors_all_detected(k):
    code = SecdedCode(k)
    e = _patterns(code.code_bits, 2)  # exhaustive: 741, 2556 and 9316 pairs
    batch = code.decode_many(e)
    assert (batch.outcomes == "detected").all()
    assert np.array_equal(batch.data_errors, e[:, :k]) and not batch.flipped.any()


def test_secded_39_32_triple_errors_match_brute_force():
    h = np.array([[int(c) for c in row] for row in H_39_32.split()], dtype=np.int64)
    columns = [int(sum(int(bit) << i for i, bit in enumerate(col))) for col in h.T]
    e = _patterns(39, 3)
    expected, flipped = _bounded_distance(columns, 39, 1, e)
    batch = SecdedCode(32).decode_many(e)
    assert np.array_equal(batch.outcomes, expected)
    assert np.array_equal(batch.flipped, flipped)
    assert np.array_equal(batch.data_errors, (e ^ flipped)[:, :32])
    counts = batch.counts()
    assert counts["undetected"] == 0  # odd-weight columns: three never sum to zero
    # a triple is miscorrected iff it plus one more column is a weight-4 codeword: 4·A4 of them
    weight4 = sum(1 for q in itertools.combinations(columns, 4) if q[0] ^ q[1] ^ q[2] ^ q[3] == 0)
    assert counts["miscorrected"] == 4 * weight4 > 0
    assert counts["miscorrected"] + counts["detected"] == len(e)
    data_flips = batch.flipped[batch.outcomes == "miscorrected", :32].any(axis=1)
    assert data_flips.any()  # some miscorrections flip a wrong data bit


@pytest.mark.parametrize("k", [64, 128])
def test_secded_triple_errors_sampled(k):
    code = SecdedCode(k)
    counts = code.decode_many(_random_patterns(code.code_bits, 3, 5000, seed=k)).counts()
    assert counts["undetected"] == 0 and counts["corrected"] == 0
    assert counts["miscorrected"] > 0 and counts["detected"] > 0


# ---------------------------------------------------------------- parity and none

def test_parity_detects_odd_misses_even_exhaustively():
    code = ParityCode(8)
    e = ((np.arange(512)[:, None] >> np.arange(9)) & 1).astype(bool)  # every pattern of 9 bits
    batch = code.decode_many(e)
    weight = e.sum(axis=1)
    expected = np.where(weight == 0, "clean", np.where(weight % 2 == 1, "detected", "undetected"))
    assert np.array_equal(batch.outcomes, expected)
    assert np.array_equal(batch.data_errors, e[:, :8]) and not batch.flipped.any()


def test_no_code_never_notices():
    code = NoCode(16)
    e = _random_patterns(16, 3, 100, seed=1)
    batch = code.decode_many(e)
    assert (batch.outcomes == "undetected").all() and np.array_equal(batch.data_errors, e)
    assert code.decode(np.zeros(16, dtype=bool)).outcome == "clean"


# ---------------------------------------------------------------- DECTED

def _bch_columns(k: int, m: int, poly: int) -> list[int]:
    """Columns (α^d, α^3d, 1) of the documented layout, computed with the bit-serial multiplier."""
    degrees = [2 * m + j for j in range(k)] + list(range(2 * m))
    return [_gf_pow(2, d, m, poly) | _gf_pow(2, 3 * d, m, poly) << m | 1 << 2 * m for d in degrees] + [1 << 2 * m]


def test_dected_45_32_matches_bounded_distance_decoding_up_to_four_errors():
    code = DectedCode(32)
    columns = _bch_columns(32, 6, 0b1000011)  # GF(64), x^6 + x + 1
    assert code.code_bits == len(columns) == 45
    for weight in (1, 2, 3, 4):
        e = _patterns(45, weight) if weight < 4 else _random_patterns(45, 4, 20000, seed=4)
        expected, flipped = _bounded_distance(columns, 45, 2, e)
        batch = code.decode_many(e)
        assert np.array_equal(batch.outcomes, expected)
        assert np.array_equal(batch.flipped, flipped)
        counts = batch.counts()
        if weight <= 2:
            assert counts["corrected"] == len(e) and not batch.data_errors.any()
        elif weight == 3:
            assert counts["detected"] == len(e)  # exhaustive: 14190 triples
        else:
            assert counts["undetected"] == 0 and counts["miscorrected"] > 0 and counts["detected"] > 0


def test_dected_79_64():
    code = DectedCode(64)
    n = code.code_bits
    for weight in (1, 2):
        batch = code.decode_many(_patterns(n, weight))  # exhaustive
        assert (batch.outcomes == "corrected").all() and not batch.data_errors.any()
    assert (code.decode_many(_random_patterns(n, 3, 20000, seed=3)).outcomes == "detected").all()
    h = code.parity_check_matrix().astype(np.int64)
    for weight in (4, 5):
        batch = code.decode_many(_random_patterns(n, weight, 5000, seed=weight))
        assert batch.counts()["undetected"] == 0 and batch.counts()["corrected"] == 0
        miss = batch.outcomes == "miscorrected"
        e = _random_patterns(n, weight, 5000, seed=weight)[miss]
        residual = e ^ batch.flipped[miss]  # a codeword of weight >= 6 (d_min of the code)
        assert miss.any() and not ((residual.astype(np.int64) @ h.T) % 2).any()
        assert (residual.sum(axis=1) >= 6).all()


@pytest.mark.parametrize("k,m,poly", [(32, 6, 0b1000011), (64, 7, 0b10001001)])
def test_dected_codewords_have_the_bch_roots(k, m, poly):
    code = DectedCode(k)
    rng = np.random.default_rng(k)
    for data in rng.integers(0, 2, (5, k)):
        word = code.encode(data)
        assert np.array_equal(word[:k], data) and word.sum() % 2 == 0  # overall parity even
        degrees = [2 * m + j for j in range(k)] + list(range(2 * m))
        for root in (2, _gf_pow(2, 3, m, poly)):  # c(α) = c(α^3) = 0
            value = 0
            for bit, d in zip(word[:-1], degrees):
                if bit:
                    value ^= _gf_pow(root, d, m, poly)
            assert value == 0


# ---------------------------------------------------------------- Reed-Solomon

def _symbol_patterns(n_symbols: int, positions: np.ndarray, values: np.ndarray) -> np.ndarray:
    e = np.zeros((len(positions), n_symbols, 8), dtype=bool)
    for col in range(positions.shape[1]):
        e[np.arange(len(positions)), positions[:, col]] = (values[:, col, None] >> np.arange(8)) & 1
    return e.reshape(len(positions), -1)


@pytest.mark.parametrize("check", [2, 3])
def test_rs_every_single_symbol_error_is_corrected(check):
    code = ReedSolomonCode(16, check)
    pos, val = np.divmod(np.arange(code.code_symbols * 255), 255)
    batch = code.decode_many(_symbol_patterns(code.code_symbols, pos[:, None], val[:, None] + 1))
    assert (batch.outcomes == "corrected").all() and not batch.data_errors.any()


@pytest.mark.parametrize("check", [2, 3])
def test_rs_double_symbol_errors(check):
    code = ReedSolomonCode(16, check)
    rng = np.random.default_rng(check)
    pos = np.argsort(rng.random((3000, code.code_symbols)), axis=1)[:, :2]
    val = rng.integers(1, 256, (3000, 2))
    e = _symbol_patterns(code.code_symbols, pos, val)
    batch = code.decode_many(e)
    if check == 3:
        assert (batch.outcomes == "detected").all()
        return
    # RS(18,16), d = 3: miscorrected exactly when S1/S0 = α^i names a stored symbol i
    poly, expected = 0x11D, []
    for p, v in zip(pos, val):
        s0 = int(v[0] ^ v[1])
        s1 = _gf_mul(int(v[0]), _gf_pow(2, int(p[0]), 8, poly), 8, poly) ^ \
            _gf_mul(int(v[1]), _gf_pow(2, int(p[1]), 8, poly), 8, poly)
        hit = s0 and s1 and any(_gf_mul(s0, _gf_pow(2, i, 8, poly), 8, poly) == s1 for i in range(18))
        expected.append("miscorrected" if hit else "detected")
    assert np.array_equal(batch.outcomes, expected)
    assert {"miscorrected", "detected"} == set(expected)


@pytest.mark.parametrize("check", [2, 3])
def test_rs_codewords_have_zero_syndromes(check):
    code = ReedSolomonCode(16, check)
    rng = np.random.default_rng(7)
    for data in rng.integers(0, 2, (4, 128)):
        word = code.encode(data)
        assert np.array_equal(word[:128], data)
        symbols = [int(sum(int(b) << i for i, b in enumerate(word[8 * s:8 * s + 8]))) for s in range(16 + check)]
        for j in range(check):  # Σ c_i α^(i·j) = 0 over GF(256), poly 0x11D
            acc = 0
            for i, c in enumerate(symbols):
                acc ^= _gf_mul(c, _gf_pow(2, i * j, 8, 0x11D), 8, 0x11D)
            assert acc == 0


# ---------------------------------------------------------------- every code

ALL_SPECS = ["none", "parity:32", "secded:32", "secded:64", "secded:128", "dected:32", "dected:64",
             "symbol:16+3", "symbol:16+2", "secded:64,bits=31-23", "parity:32,bits=31+30-23"]


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_encode_round_trip(spec):
    code = parse_scheme_code(spec)
    data = np.random.default_rng(0).integers(0, 2, (20, code.data_bits))
    words = code.encode(data)
    assert words.shape == (20, code.code_bits) and np.array_equal(words[:, :code.data_bits], data)
    assert not code.syndromes(words).any()
    assert not ((words.astype(np.int64) @ code.parity_check_matrix().T.astype(np.int64)) % 2).any()
    assert code.decode(np.zeros(code.code_bits, dtype=bool)).outcome == "clean"
    nonzero = words[words.any(axis=1)]  # a codeword as error pattern: invisible to the decoder
    batch = code.decode_many(nonzero)
    assert (batch.outcomes == "undetected").all() and np.array_equal(batch.data_errors, nonzero[:, :code.data_bits])


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_decoding_is_fast_enough(spec):
    import time
    code = parse_scheme_code(spec)
    e = _random_patterns(code.code_bits, 2, 20000, seed=5)
    start = time.perf_counter()
    code.decode_many(e)
    assert time.perf_counter() - start < 2.0  # ≥ 10^4 patterns per second, with margin
