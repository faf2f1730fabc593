"""Hand-checked small schedules for every dataflow: folds, cycles, traffic, residency rows.

Hardware (``_hw``): 4×4 array, 1 GHz, HBM 16 B/cycle with 10 cycles latency and 16-byte
bursts, 1 KiB double-buffered SRAMs, 1-byte weights and activations, 4-byte accumulators,
vector unit 16 lanes / 4 cycles latency. Program: y[6,5] = x[6,8] @ w[8,5] (one tile).

Timeline (all dataflows): weight load 40 B -> 48 B -> 10 + 3 = 13 cycles [0, 13); input load
48 B -> 13 cycles [13, 26); compute from 26; writeback 30 B -> 32 B -> 10 + 2 = 12 cycles.
"""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.ir import Instruction, Parameter, Program, TensorSpec
from accelsim.schedule import STRUCTURES, ScheduleError, simulate

HW_TOML = """
name = "hand"
clock_ghz = 1.0
[array]
rows = 4
cols = 4
dataflow = "ws"
[weight_sram]
size_kib = 1
word_bytes = 16
banks = 1
double_buffered = true
[input_sram]
size_kib = 1
word_bytes = 16
banks = 1
double_buffered = true
[output_sram]
size_kib = 1
word_bytes = 16
banks = 1
double_buffered = true
[embedding_sram]
size_kib = 1
word_bytes = 16
banks = 1
double_buffered = true
[hbm]
size_gib = 1
bandwidth_gbps = 16
latency_ns = 10
burst_bytes = 16
[vector_unit]
lanes = 16
latency_cycles = 4
[precision]
weight_bytes = 1
activation_bytes = 1
accumulator_bytes = 4
scale_bytes = 0  # the hand-computed rows below have no int8 scales (see test_scales_by_hand)
"""


@pytest.fixture()
def hw_path(tmp_path):
    path = tmp_path / "hand.toml"
    path.write_text(HW_TOML)
    return str(path)


def _hw(path, *overrides):
    return load_config(path, list(overrides))


def _gemm_program():
    w = np.arange(40, dtype=np.float32).reshape(8, 5)
    inst = Instruction("matmul", "mm", ("x", "w"), ("y",))
    prog = Program((TensorSpec("x", "float32", (6, 8)),), (TensorSpec("y", "float32", (6, 5)),),
                   {"w": Parameter("w", (8, 5), "fc")}, {"w": w}, {}, (inst,))
    return prog, {"x": (6, 8), "y": (6, 5)}


def _rows(sched, structure):
    res = sched.residency
    idx = res.select(structure)
    return {c: res[c][idx].tolist() for c in res.cols}


def test_ws_by_hand(hw_path):
    prog, shapes = _gemm_program()
    s = simulate(prog, shapes, _hw(hw_path))
    ops = s.ops
    # folds ⌈8/4⌉·⌈5/4⌉ = 4, each 2·4 + 4 + 6 − 2 = 16 cycles
    assert ops["folds"][0] == 4 and ops["compute_cycles"][0] == 64
    assert s.folds.start.tolist() == [26, 42, 58, 74]               # n-block outer, k-block inner
    assert s.folds.rows(("k0", "k1", "n0", "n1")) == [(0, 4, 0, 4), (4, 8, 0, 4), (0, 4, 4, 5), (4, 8, 4, 5)]
    assert s.total_cycles == 26 + 64 + 12 and ops["stall_cycles"][0] == 26 + 12
    # traffic: weight reads K·N, input reads M·K·⌈N/C⌉, output writes M·N·⌈K/R⌉ (4 B each)
    assert ops["weight_sram_read_bytes"][0] == 40 and ops["input_sram_read_bytes"][0] == 96
    assert ops["output_sram_write_bytes"][0] == 60 * 4
    assert ops["hbm_read_bytes"][0] == 48 + 48 and ops["hbm_write_bytes"][0] == 32
    sram = _rows(s, "weight_sram")
    # one tile [0:8, 0:5] at slot 0 bytes [0, 40): written in cycle 12, first read by fold 0 at
    # 26, last by fold 3 row 3 at 74 + 3 = 77; ACE = Σ_e (last read − 12) = (16·26 + 4·6) +
    # (16·42 + 24) + (4·58 + 6) + (4·74 + 6) − 40·12 = 1196 element-cycles · 8 bits
    assert {k: v[0] for k, v in sram.items()} == {
        "param": 0, "structure": 1, "op": 0, "view": 0, "g": 0, "k0": 0, "k1": 8, "n0": 0, "n1": 5,
        "slot": 0, "addr_lo": 0, "addr_hi": 40, "bits": 320, "write_cycle": 12, "first_read": 26,
        "last_read": 77, "read_count": 1, "evict_cycle": 102, "ace_bit_cycles": 1196 * 8}
    hbm = _rows(s, "hbm")
    assert (hbm["write_cycle"], hbm["first_read"], hbm["last_read"], hbm["addr_hi"], hbm["ace_bit_cycles"]) \
        == ([-1], [0], [0], [40], [40 * 8])
    pe = _rows(s, "pe")
    # fold 0: weights in place at 26 + 4 − 1 = 29, MACs at 26 + 4 + m + r + c, m < 6, r, c < 4
    assert pe["write_cycle"] == [29, 45, 61, 77] and pe["first_read"] == [30, 46, 62, 78]
    assert pe["last_read"] == [41, 57, 70, 86] and pe["evict_cycle"] == [42, 58, 74, 102]
    assert pe["read_count"] == [6] * 4 and pe["bits"] == [128, 128, 32, 32]
    # ACE = kb·nb·M + nb·kb(kb−1)/2 + kb·nb(nb−1)/2: 96 + 24 + 24 = 144; 24 + 6 + 0 = 30
    assert pe["ace_bit_cycles"] == [144 * 8, 144 * 8, 30 * 8, 30 * 8]
    assert pe["addr_hi"] == [16, 16, 13, 13]


def test_os_by_hand(hw_path):
    prog, shapes = _gemm_program()
    s = simulate(prog, shapes, _hw(hw_path, "array.dataflow=os"))
    ops = s.ops
    # folds ⌈6/4⌉·⌈5/4⌉ = 4, each 8 + 4 + 4 − 2 = 14 cycles; m-block outer, n-block inner
    assert ops["compute_cycles"][0] == 56
    assert s.folds.start.tolist() == [26, 40, 54, 68]
    assert s.folds.rows(("m0", "m1", "n0", "n1")) == [(0, 4, 0, 4), (0, 4, 4, 5), (4, 6, 0, 4), (4, 6, 4, 5)]
    # weight reads K·N·⌈M/R⌉ = 80, input M·K·⌈N/C⌉ = 96, output M·N = 30
    assert ops["weight_sram_read_bytes"][0] == 80 and ops["input_sram_read_bytes"][0] == 96
    assert ops["output_sram_write_bytes"][0] == 30 * 4
    sram = _rows(s, "weight_sram")
    # last read: fold 3, B[7, 4] at 68 + 7 + 0 = 75; read ⌈6/4⌉ = 2 times; ACE from the last
    # m-block: (8·4·54 + 4·28 + 8·6) + (8·1·68 + 28) − 40·12 = 1980
    assert (sram["first_read"], sram["last_read"], sram["read_count"]) == ([26], [75], [2])
    assert sram["ace_bit_cycles"] == [1980 * 8]
    pe = _rows(s, "pe")
    # each B element passes mb PEs of its column for one cycle: ACE = K·nb·mb
    assert pe["write_cycle"][0] == 25 and pe["first_read"][0] == 26 and pe["last_read"][0] == 26 + 7 + 3 + 3
    assert pe["read_count"] == [4, 4, 2, 2] and pe["ace_bit_cycles"][0] == 8 * 4 * 4 * 8
    assert pe["bits"] == [128, 32, 64, 16]


def test_is_by_hand(hw_path):
    prog, shapes = _gemm_program()
    s = simulate(prog, shapes, _hw(hw_path, "array.dataflow=is"))
    ops = s.ops
    # folds ⌈8/4⌉·⌈6/4⌉ = 4, each 2·4 + 4 + 5 − 2 = 15 cycles; m-block outer, k-block inner
    assert ops["compute_cycles"][0] == 60
    assert s.folds.start.tolist() == [26, 41, 56, 71]
    assert ops["weight_sram_read_bytes"][0] == 80 and ops["input_sram_read_bytes"][0] == 48
    assert ops["output_sram_write_bytes"][0] == 60 * 4
    sram = _rows(s, "weight_sram")
    # B[k0+r, n] read at t0 + 4 + n + r: first 30, last 71 + 4 + 4 + 3 = 82
    assert (sram["first_read"], sram["last_read"], sram["read_count"]) == ([30], [82], [2])


def test_vector_and_gather_by_hand(hw_path):
    t = np.arange(80, dtype=np.float32).reshape(10, 8)
    idx = np.array([3, 7, 3], dtype=np.int64)
    insts = (Instruction("gather", "lookup", ("t", "idx"), ("e",), {"axis": 0}),
             Instruction("relu", "act", ("e",), ("y",)))
    prog = Program((TensorSpec("idx", "int64", (3,)),), (TensorSpec("y", "float32", (3, 8)),),
                   {"t": Parameter("t", (10, 8), "embedding.table0", "embedding")}, {"t": t}, {}, insts)
    s = simulate(prog, {"idx": (3,), "e": (3, 8), "y": (3, 8)}, _hw(hw_path), index_values={"idx": idx})
    ops = s.ops
    # gather: 3 rows of 8 B, each its own 16-byte burst: 48 B -> 10 + 3 = 13 cycles; vector
    # compute ⌈24/16⌉ + 4 = 6 cycles [13, 19); relu: ⌈24/16⌉ + 4 = 6 cycles
    assert ops["hbm_read_bytes"][0] == 48 and ops["compute_cycles"].tolist() == [6, 6]
    emb = _rows(s, "embedding_sram")
    assert emb["k0"] == [3, 7, 3] and emb["addr_lo"] == [0, 8, 16] and emb["addr_hi"] == [8, 16, 24]
    assert emb["write_cycle"] == [12] * 3 and emb["first_read"] == [18] * 3 and emb["last_read"] == [18] * 3
    hbm = _rows(s, "hbm")
    # table row 3 read twice (both lookups' transfer starts at cycle 0), row 7 once
    assert hbm["k0"] == [3, 7] and hbm["read_count"] == [2, 1]
    assert hbm["addr_lo"] == [24, 56] and hbm["addr_hi"] == [32, 64]
    assert set(STRUCTURES) == {"hbm", "weight_sram", "embedding_sram", "pe"}


def test_buffer_too_small_is_one_line(hw_path):
    prog, shapes = _gemm_program()
    hw = _hw(hw_path, "weight_sram.size_kib=0.0078125", "weight_sram.word_bytes=4",
             "weight_sram.double_buffered=false")
    with pytest.raises(ScheduleError) as info:
        simulate(prog, shapes, hw)
    assert str(info.value) == ("weight_sram slot of 8 B cannot hold one tile of op 'mm' (matmul "
                               "M=6 K=8 N=5): needs 16 B for a 1x4x4 (MxKxN) tile")


def test_unknown_indices_is_one_line(hw_path):
    t = np.zeros((10, 8), dtype=np.float32)
    insts = (Instruction("gather", "lookup", ("t", "idx"), ("e",), {"axis": 0}),)
    prog = Program((TensorSpec("idx", "int64", (3,)),), (TensorSpec("e", "float32", (3, 8)),),
                   {"t": Parameter("t", (10, 8), "emb")}, {"t": t}, {}, insts)
    with pytest.raises(ScheduleError, match=r"^op 'lookup' \(gather\) looks up table 't' with indices 'idx' whose values are unknown"):
        simulate(prog, {"idx": (3,), "e": (3, 8)}, _hw(hw_path))


def test_tiling_splits_k_and_reloads_weights(hw_path):
    """A 64-byte weight slot forces K tiles of 4 rows (4·4·... ): each weight tile is loaded once
    per M tile, partial sums stay in the output SRAM across K tiles."""
    prog, shapes = _gemm_program()
    s = simulate(prog, shapes, _hw(hw_path, "weight_sram.size_kib=0.0625", "weight_sram.double_buffered=false",
                                   "output_sram.size_kib=0.0625", "output_sram.double_buffered=false"))
    mt, kt, nt = s.tiles[0]
    assert kt * nt <= 64 and mt * nt * 4 <= 64
    assert s.ops["compute_cycles"][0] >= 64
    res = s.residency
    hbm = res.select("hbm")
    covered = np.zeros(40, dtype=int)
    for row in hbm:
        covered[res.elements(row).reshape(-1)] += 1
    assert covered.min() == 1 and covered.max() == 1


def test_scales_by_hand(hw_path):
    """int8 weights with stored scales: y[6,5] = x[6,8] @ w[8,5], w per-column scales (axis 1).

    HBM: w at [0, 40) (48 with padding), then w#scale = 5 fp32 = 20 B at [48, 68). The weight
    load carries tile + scales: 40 + 20 = 60 B -> 64 B -> 10 + 4 = 14 cycles [0, 14), so the input
    load is [14, 27) and compute starts at 27 (one cycle later than without scales). The scales
    sit in the weight slot right after the tile, bytes [40, 60), are written in cycle 13 and read
    when the (only) output tile is finished, in the last compute cycle 27 + 64 − 1 = 90.
    """
    w = np.arange(40, dtype=np.float32).reshape(8, 5)
    inst = Instruction("matmul", "mm", ("x", "w"), ("y",))
    prog = Program((TensorSpec("x", "float32", (6, 8)),), (TensorSpec("y", "float32", (6, 5)),),
                   {"w": Parameter("w", (8, 5), "fc", channel_axis=1)}, {"w": w}, {}, (inst,))
    s = simulate(prog, {"x": (6, 8), "y": (6, 5)}, _hw(hw_path, "precision.scale_bytes=4"))
    assert s.hbm.parameter_names == ("w", "w#scale")
    assert s.hbm.base_bytes.tolist() == [0, 48] and s.hbm.size_bytes.tolist() == [40, 20]
    assert s.hbm.element_bytes.tolist() == [1, 4] and s.hbm.region_bytes == 80
    assert s.folds.start.tolist() == [27, 43, 59, 75] and s.total_cycles == 27 + 64 + 12
    sram = _rows(s, "weight_sram")
    scale = sram["param"].index(1)
    assert {k: v[scale] for k, v in sram.items() if k in ("addr_lo", "addr_hi", "bits", "write_cycle", "first_read",
                                                         "last_read", "read_count", "n0", "n1")} == {
        "addr_lo": 40, "addr_hi": 60, "bits": 160, "write_cycle": 13, "first_read": 90, "last_read": 90,
        "read_count": 1, "n0": 0, "n1": 5}
    assert sram["ace_bit_cycles"][scale] == 5 * (90 - 13) * 32
    hbm = _rows(s, "hbm")
    at = hbm["param"].index(1)
    assert (hbm["addr_lo"][at], hbm["addr_hi"][at], hbm["bits"][at], hbm["last_read"][at]) == (48, 68, 160, 0)
    # read-weighted: all 6 output rows read each scale once, at the same cycle: no reduction
    res = s.residency
    assert res.ace_read_weighted[res.select("weight_sram")][scale] == pytest.approx(5 * 77 * 32)


def test_decode_latency_by_hand(hw_path):
    """ECC decode latency: HBM +5 cycles per parameter transfer delays the weight load (13 -> 18
    cycles, so the input load runs [18, 31) and compute starts at 31); weight SRAM +3 cycles
    delays every step's first fold (26 -> 29). Both add to the op's compute cycles."""
    prog, shapes = _gemm_program()
    base = simulate(prog, shapes, _hw(hw_path))
    hbm = simulate(prog, shapes, _hw(hw_path), decode_cycles={"hbm": 5})
    sram = simulate(prog, shapes, _hw(hw_path), decode_cycles={"weight_sram": 3})
    assert hbm.folds.start.tolist() == [s + 5 for s in base.folds.start.tolist()]
    assert hbm.total_cycles == base.total_cycles + 5
    assert sram.folds.start.tolist() == [s + 3 for s in base.folds.start.tolist()]
    assert sram.ops["compute_cycles"][0] == base.ops["compute_cycles"][0] + 3
    assert sram.total_cycles == base.total_cycles + 3 == int(sram.ops["cycles"].sum())
    with pytest.raises(ScheduleError, match="decode latency pe=1"):
        simulate(prog, shapes, _hw(hw_path), decode_cycles={"pe": 1})
