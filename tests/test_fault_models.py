"""Bit-level tests of the fault models on fp32 / fp16 / bf16 / int8 stored bits."""
from __future__ import annotations

import math

import numpy as np
import pytest

from accelsim.storage import encode
from faults.common import fault_models as models
from faults.common.fault_models import FaultModel, FaultModelError, parse_fault


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _fixed(kind: str, bit: int, values, fmt: str, **kw):
    stored = encode(np.asarray(values, dtype=np.float32), fmt)
    c = models.draw(FaultModel(kind, **kw), stored, _rng(), bit=bit)
    return stored, c, models.apply(stored, c)


@pytest.mark.parametrize(
    "fmt,bit,expected",
    [("fp32", 30, np.inf), ("fp16", 14, np.inf), ("bf16", 14, np.inf),
     ("fp32", 31, -1.0), ("fp16", 15, -1.0), ("bf16", 15, -1.0),
     ("fp32", 23, 0.5), ("fp16", 10, 0.5), ("bf16", 7, 0.5),
     ("fp32", 22, 1.5), ("fp16", 9, 1.5), ("bf16", 6, 1.5)],
)
def test_sbf_on_one_point_zero(fmt, bit, expected):
    stored, c, faulty = _fixed("sbf", bit, [1.0], fmt)
    assert c.nflips == 1 and c.bit == bit and c.index.tolist() == [0]
    assert faulty.decode()[0] == expected
    assert stored.decode()[0] == 1.0  # golden untouched


def test_sbf_exact_bits_fp32():
    stored, c, faulty = _fixed("sbf", 30, [1.0], "fp32")
    assert int(c.old_bits[0]) == 0x3F800000 and int(c.new_bits[0]) == 0x7F800000
    assert int(faulty.bits[0]) == 0x7F800000


def test_sbf_int8_sign_and_magnitude():
    values = np.array([127.0, 1.0, -1.0], dtype=np.float32)  # scale = 1 -> q = 127, 1, -1
    stored = encode(values, "int8")
    assert stored.scales.reshape(-1)[0] == 1.0
    flipped = models.flip(stored.bits, [7], 8).view(np.int8)
    assert flipped.tolist() == [-1, -127, 127]  # 0x7F->0xFF, 0x01->0x81, 0xFF->0x7F
    _, c, faulty = _fixed("sbf", 6, [127.0, 0.0], "int8")
    assert c.nflips == 1
    expected = {0: 127 - 64, 1: 64}[int(c.index[0])]
    assert faulty.decode()[c.index[0]] == expected


@pytest.mark.parametrize("fmt,width", [("fp32", 32), ("fp16", 16), ("bf16", 16), ("int8", 8)])
def test_stuck_at_same_value_is_masked(fmt, width):
    stored = encode(np.full(64, 1.0, dtype=np.float32), fmt)
    pattern = int(stored.bits[0])
    for bit in range(width):
        kind = "stuck1" if (pattern >> bit) & 1 else "stuck0"
        c = models.draw(FaultModel(kind), stored, _rng(bit), bit=bit)
        assert c.masked and c.nflips == 0 and int(c.new_bits[0]) == pattern
        other = "stuck0" if kind == "stuck1" else "stuck1"
        c2 = models.draw(FaultModel(other), stored, _rng(bit), bit=bit)
        assert c2.nflips == 1 and int(c2.new_bits[0]) == pattern ^ (1 << bit)


@pytest.mark.parametrize("fmt,width", [("fp32", 32), ("fp16", 16), ("bf16", 16), ("int8", 8)])
@pytest.mark.parametrize("word,length", [(64, 1), (64, 5), (32, 32), (16, 3), (8, 8), (24, 7)])
def test_burst_stays_in_one_word(fmt, width, word, length):
    n = 37  # odd element count: a partial last word
    stored = encode(np.linspace(-2, 2, n).astype(np.float32), fmt)
    model = FaultModel("burst", length=length, word_bits=word)
    rng = _rng(7)
    for _ in range(300):
        c = models.draw(model, stored, rng)
        flipped = []
        for e, old, new in zip(c.index, c.old_bits, c.new_bits):
            x = int(old) ^ int(new)
            flipped += [int(e) * width + b for b in range(width) if (x >> b) & 1]
        flipped.sort()
        assert len(flipped) == length == c.nflips
        assert flipped == list(range(flipped[0], flipped[0] + length))  # adjacent
        assert flipped[0] // word == flipped[-1] // word  # one word
        assert flipped[-1] < n * width
        assert c.bit == flipped[0] % width


def test_burst_fixed_bit_and_impossible_site():
    stored = encode(np.ones(16, dtype=np.float32), "fp32")
    model = FaultModel("burst", length=4, word_bits=64)
    rng = _rng(3)
    for _ in range(100):
        c = models.draw(model, stored, rng, bit=30)
        assert c.bit == 30 and c.nflips == 4
        assert int(c.index[0]) % 2 == 0  # only the first fp32 of a 64-bit word has room
    with pytest.raises(FaultModelError, match="never fits"):
        models.draw(FaultModel("burst", length=8, word_bits=32), stored, rng, bit=30)


def test_burst_covers_every_start_uniformly():
    stored = encode(np.zeros(4, dtype=np.float32), "fp16")  # 64 bits, one 32-bit word pair
    model = FaultModel("burst", length=3, word_bits=32)
    assert models.burst_starts(4, 16, 3, 32) == 2 * 30
    rng = _rng(11)
    starts = [int(c.index[0]) * 16 + c.bit for c in (models.draw(model, stored, rng) for _ in range(6000))]
    counts = np.bincount(starts, minlength=64)
    valid = [s for s in range(64) if s % 32 <= 29]
    assert set(np.nonzero(counts)[0]) == set(valid)
    assert counts[valid].min() > 60 and counts[valid].max() < 150  # ~100 each


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16", "int8"])
def test_sbf_drawn_and_restricted_positions(fmt):
    width = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8}[fmt]
    stored = encode(np.random.default_rng(0).standard_normal(50).astype(np.float32), fmt)
    rng = _rng(5)
    bits = [models.draw(FaultModel("sbf"), stored, rng).bit for _ in range(40 * width)]
    assert set(bits) == set(range(width))
    restricted = FaultModel("sbf", positions=(0, width - 1))
    bits = {models.draw(restricted, stored, rng).bit for _ in range(100)}
    assert bits == {0, width - 1}
    with pytest.raises(FaultModelError, match="out of range"):
        models.draw(FaultModel("sbf"), stored, rng, bit=width)
    with pytest.raises(FaultModelError, match="out of range"):
        FaultModel("sbf", positions=(width,)).bit_positions(fmt)


def test_mbf_counts_follow_zero_truncated_binomial():
    from scipy.stats import binom

    n_el, ber = 1000, 5e-5  # 32000 bits, lambda = 1.6
    stored = encode(np.ones(n_el, dtype=np.float32), "fp32")
    rng = _rng(2)
    counts = np.array([models.draw(FaultModel("mbf", ber=ber), stored, rng).nflips for _ in range(3000)])
    assert counts.min() >= 1
    k = np.arange(1, 40)
    pmf = binom.pmf(k, n_el * 32, ber) / binom.sf(0, n_el * 32, ber)
    expected_mean = float((k * pmf).sum())
    assert abs(counts.mean() - expected_mean) < 0.08
    assert abs(np.mean(counts == 1) - pmf[0]) < 0.03


def test_mbf_restricted_positions_and_tiny_ber():
    stored = encode(np.ones(100, dtype=np.float32), "bf16")
    rng = _rng(4)
    for _ in range(50):
        c = models.draw(FaultModel("mbf", ber=0.1, positions=(14,)), stored, rng)
        assert all(int(o) ^ int(n) == 1 << 14 for o, n in zip(c.old_bits, c.new_bits))
    c = models.draw(FaultModel("mbf", ber=1e-12), stored, rng)  # conditioned on >= 1 flip
    assert c.nflips == 1


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16", "int8"])
def test_random_value_replaces_one_element(fmt):
    stored = encode(np.zeros(10, dtype=np.float32), fmt)
    rng = _rng(9)
    cs = [models.draw(FaultModel("random"), stored, rng) for _ in range(200)]
    assert all(c.index.size == 1 and c.bit == -1 for c in cs)
    news = {int(c.new_bits[0]) for c in cs}
    assert len(news) > 50  # really random patterns
    width = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8}[fmt]
    assert max(news) < 2 ** width


def test_draws_are_deterministic_per_generator():
    stored = encode(np.random.default_rng(0).standard_normal(300).astype(np.float32), "fp16")
    key = lambda c: (c.index.tolist(), c.new_bits.tolist(), c.bit, c.nflips)  # noqa: E731
    for spec in ["sbf", "mbf:ber=1e-3", "burst:len=3,word=32", "stuck1", "random"]:
        a = models.draw(parse_fault(spec), stored, np.random.default_rng([4, 2]))
        b = models.draw(parse_fault(spec), stored, np.random.default_rng([4, 2]))
        assert key(a) == key(b)
        # the draw comes from the generator alone: another seed gives another fault
        other = models.draw(parse_fault(spec), stored, np.random.default_rng([4, 3]))
        assert key(other) != key(a), spec


def test_parse_fault_and_errors():
    m = parse_fault("burst:len=4,word=32,bits=23-30")
    assert (m.kind, m.length, m.word_bits, m.positions) == ("burst", 4, 32, tuple(range(23, 31)))
    assert parse_fault(m.describe()) == m
    assert parse_fault("sa1").kind == "stuck1"
    assert parse_fault("mbf:ber=1e-7").ber == 1e-7
    for bad, msg in [("xyz", "unknown fault model"), ("sbf:foo=1", "unknown fault option"),
                     ("burst:len=9,word=8", "length <= word_bits"), ("mbf:ber=2", "ber"),
                     ("sbf:bits=a", "bad value")]:
        with pytest.raises(FaultModelError, match=msg):
            parse_fault(bad)


def test_population_size():
    assert models.population_size(FaultModel("sbf"), 10, "fp16") == 160
    assert models.population_size(FaultModel("sbf"), 10, "fp16", bit=3) == 10
    assert models.population_size(FaultModel("burst", length=2, word_bits=64), 4, "fp32") == 2 * 63
    assert models.population_size(FaultModel("mbf"), 10, "fp32") == float("inf")


# ---------------------------------------------------------------------------- k-bit, mbf scope, enumeration
def _flipped_stream_bits(c, width: int) -> list[int]:
    out = []
    for e, old, new in zip(c.index, c.old_bits, c.new_bits):
        x = int(old) ^ int(new)
        out += [int(e) * width + b for b in range(width) if (x >> b) & 1]
    return sorted(out)


@pytest.mark.parametrize("fmt,width", [("fp32", 32), ("fp16", 16), ("int8", 8)])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_kbit_element_flips_exactly_k_bits_of_one_element(fmt, width, k):
    stored = encode(np.linspace(-3, 3, 11).astype(np.float32), fmt)
    rng = _rng(k)
    for _ in range(200):
        c = models.draw(FaultModel("kbit", k=k), stored, rng)
        bits = _flipped_stream_bits(c, width)
        assert c.nflips == k == len(set(bits)) and c.index.size == 1
        assert {b // width for b in bits} == {int(c.index[0])}
        assert c.bit == (bits[0] % width if k == 1 else -1)


def test_kbit_element_is_uniform_over_elements_and_subsets():
    from itertools import combinations

    from scipy.stats import chisquare

    stored = encode(np.arange(5, dtype=np.float32), "int8")  # 5 elements x C(8, 2) = 140 faults
    model = parse_fault("kbit:k=2")
    assert models.population_size(model, 5, "int8") == 5 * 28
    index = {(e, pair): i for i, (e, pair) in enumerate((e, p) for e in range(5) for p in combinations(range(8), 2))}
    rng = _rng(17)
    counts = np.zeros(140)
    for _ in range(14000):
        c = models.draw(model, stored, rng)
        bits = _flipped_stream_bits(c, 8)
        counts[index[(bits[0] // 8, tuple(b % 8 for b in bits))]] += 1
    assert chisquare(counts).pvalue > 1e-3  # 100 expected per fault


def test_kbit_word_scope_and_partial_last_word():
    from scipy.stats import chisquare

    stored = encode(np.arange(13, dtype=np.float32), "int8")  # 104 bits: 3 words of 32 + 8 bits
    model = parse_fault("kbit:k=2,scope=word,word=32")
    total = 3 * math.comb(32, 2) + math.comb(8, 2)
    assert models.population_size(model, 13, "int8") == total == 1516
    rng = _rng(23)
    words = np.zeros(4)
    for _ in range(6000):
        bits = _flipped_stream_bits(models.draw(model, stored, rng), 8)
        assert len(bits) == 2 and bits[0] // 32 == bits[1] // 32  # one word
        words[bits[0] // 32] += 1
    expected = np.array([496, 496, 496, 28]) / total * 6000
    assert chisquare(words, expected).pvalue > 1e-3
    with pytest.raises(FaultModelError, match="scope=element only"):
        parse_fault("kbit:k=2,scope=word,bits=1-4")


def test_mbf_element_scope_flips_inside_one_element():
    from scipy.stats import binom

    stored = encode(np.ones(500, dtype=np.float32), "fp16")
    model = parse_fault("mbf:ber=0.05,scope=element")
    assert model.describe() == "mbf:ber=0.05,scope=element" and parse_fault("mbf:ber=1e-6").scope == "tensor"
    rng = _rng(31)
    counts = []
    for _ in range(3000):
        c = models.draw(model, stored, rng)
        assert c.index.size == 1
        counts.append(c.nflips)
    k = np.arange(1, 17)
    pmf = binom.pmf(k, 16, 0.05) / binom.sf(0, 16, 0.05)  # zero-truncated Binomial(16, 0.05)
    assert np.mean(counts) == pytest.approx(float((k * pmf).sum()), abs=0.03)
    assert np.mean(np.array(counts) == 1) == pytest.approx(pmf[0], abs=0.03)
    assert models.population_size(model, 500, "fp16") == float("inf") and not models.enumerable(model)


@pytest.mark.parametrize("spec,fmt,n,bit,expected", [
    ("sbf", "fp16", 7, None, 7 * 16),
    ("sbf:bits=3+5", "fp32", 7, None, 14),
    ("stuck1", "int8", 7, 2, 7),
    ("kbit:k=3", "fp16", 7, None, 7 * math.comb(16, 3)),
    ("kbit:k=2,bits=0-3", "fp32", 7, None, 7 * 6),
    ("kbit:k=2,scope=word,word=24", "fp16", 7, None, 4 * math.comb(24, 2) + math.comb(16, 2)),
    ("burst:len=3,word=32", "fp16", 7, None, 3 * 30 + 14),
    # fp16 pairs in a 32-bit word: a 3-bit burst at bit 14 fits only in even elements, and not in
    # the last one (it would run past the tensor's 112 bits): elements 0, 2, 4
    ("burst:len=3,word=32", "fp16", 7, 14, 3),
    ("burst:len=3,word=32,bits=10-14", "fp16", 7, None, 4 * 7 + 3),
])
def test_fault_at_enumerates_each_fault_exactly_once(spec, fmt, n, bit, expected):
    model = parse_fault(spec)
    width = {"fp32": 32, "fp16": 16, "int8": 8}[fmt]
    stored = encode(np.linspace(-1, 1, n).astype(np.float32), fmt)
    N = models.population_size(model, n, fmt, bit)
    assert N == expected
    seen = set()
    for i in range(int(N)):
        c = models.fault_at(model, stored, i, bit=bit)
        key = (tuple(c.index.tolist()), tuple(c.new_bits.tolist())) if model.kind.startswith("stuck") \
            else tuple(_flipped_stream_bits(c, width))
        seen.add(key)
        if bit is not None:
            assert c.bit == bit
    assert len(seen) == N  # distinct faults
    # every random draw is one of the enumerated faults
    rng = _rng(41)
    for _ in range(200):
        c = models.draw(model, stored, rng, bit=bit)
        key = (tuple(c.index.tolist()), tuple(c.new_bits.tolist())) if model.kind.startswith("stuck") \
            else tuple(_flipped_stream_bits(c, width))
        assert key in seen
    with pytest.raises(FaultModelError, match="outside a population"):
        models.fault_at(model, stored, int(N), bit=bit)


def test_stuck_at_activation_share_is_the_share_of_bits_with_the_other_value():
    # 1.0f = 0x3F800000 has bits 23..29 set: stuck-at-1 activates on the other 25 of 32 bits
    stored = encode(np.ones(3, dtype=np.float32), "fp32")
    for kind, ones in [("stuck1", 32 - 7), ("stuck0", 7)]:
        model = FaultModel(kind)
        faults = [models.fault_at(model, stored, i) for i in range(int(models.population_size(model, 3, "fp32")))]
        assert sum(c.activated for c in faults) == 3 * ones
        assert all(c.activated != c.masked for c in faults)


def test_kbit_parse_and_errors():
    m = parse_fault("kbit:k=4,scope=word,word=32")
    assert (m.kind, m.k, m.scope, m.word_bits) == ("kbit", 4, "word", 32)
    assert parse_fault(m.describe()) == m and parse_fault("kbit").k == 2 and parse_fault("kbit").scope == "element"
    for bad, msg in [("kbit:k=0", "k must be"), ("kbit:k=3,bits=1+2", "exceeds"), ("kbit:scope=row", "scope must"),
                     ("sbf:scope=word", "no scope"), ("kbit:k=40,scope=word,word=32", "k <= word")]:
        with pytest.raises(FaultModelError, match=msg):
            parse_fault(bad)
    with pytest.raises(FaultModelError, match="exceeds the 8 bits"):
        models.draw(parse_fault("kbit:k=9"), encode(np.ones(4, dtype=np.float32), "int8"), _rng())
