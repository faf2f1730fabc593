"""Compute cycles and SRAM access counts agree with SCALE-Sim 3.0.0.

Formulas (R×C array, GEMM Y[M,N] = A[M,K]·B[K,N], folds back to back, SCALE-Sim convention):

    os: ⌈M/R⌉·⌈N/C⌉ folds of K + R + C − 2 cycles
    ws: ⌈K/R⌉·⌈N/C⌉ folds of 2R + C + M − 2 cycles
    is: ⌈K/R⌉·⌈M/C⌉ folds of 2R + C + N − 2 cycles
    reported total = folds × cycles per fold − 1

Conv layers are lowered by im2col: M = OH·OW, K = C·kh·kw, N = filters, with SCALE-Sim's output
size ⌈(H − kh + s)/s⌉ (no padding). SRAM element accesses (1-byte words):

    ws: ifmap M·K·⌈N/C⌉, filter K·N,        ofmap writes M·N·⌈K/R⌉
    os: ifmap M·K·⌈N/C⌉, filter K·N·⌈M/R⌉,  ofmap writes M·N + folds·(R + C)  (SCALE-Sim counts
        R + C extra writes per fold; accelsim counts M·N)
    is: ifmap M·K,       filter K·N·⌈M/C⌉,  ofmap writes M·N·⌈K/R⌉

EXPECTED holds the numbers printed by SCALE-Sim 3.0.0 itself (its own venv, CALC bandwidth
mode, stall-free) for these layers; regenerate with
``benchmarks/scalesim_reference/run_scalesim.py --layers benchmarks/scalesim_reference/layers.json``
(the raw output is benchmarks/scalesim_reference/expected.json).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from accelsim.config import load_config
from accelsim.ir import Instruction, Parameter, Program, TensorSpec
from accelsim.schedule import simulate
from accelsim.schedule.dataflow import compute_cycles, fold_grid, sram_accesses

LAYERS = {  # name: ("gemm", M, K, N) or ("conv", H, W, kh, kw, C, filters, stride)
    "gemm_64x100x40": ("gemm", 64, 100, 40),
    "gemm_37x29x50": ("gemm", 37, 29, 50),
    "gemm_128x64x96": ("gemm", 128, 64, 96),
    "conv_12x12_3x3_c8_o16_s1": ("conv", 12, 12, 3, 3, 8, 16, 1),
    "conv_15x15_5x5_c3_o6_s2": ("conv", 15, 15, 5, 5, 3, 6, 2),
    "lenet_conv2_14x14_5x5_c6_o16": ("conv", 14, 14, 5, 5, 6, 16, 1),
}

# (layer, R, C, dataflow, SCALE-Sim compute cycles, ifmap SRAM reads, filter SRAM reads, ofmap SRAM writes)
EXPECTED = [
    ("gemm_64x100x40", 8, 8, "os", 4559, 32000, 32000, 3200),
    ("gemm_37x29x50", 8, 8, "os", 1504, 7511, 7250, 2410),
    ("gemm_128x64x96", 8, 8, "os", 14975, 98304, 98304, 15360),
    ("conv_12x12_3x3_c8_o16_s1", 8, 8, "os", 2235, 14400, 14976, 2016),
    ("conv_15x15_5x5_c3_o6_s2", 8, 8, "os", 444, 2700, 2250, 296),
    ("lenet_conv2_14x14_5x5_c6_o16", 8, 8, "os", 4263, 30000, 31200, 2016),
    ("gemm_64x100x40", 8, 8, "ws", 5589, 32000, 4000, 33280),
    ("gemm_37x29x50", 8, 8, "ws", 1651, 7511, 1450, 7400),
    ("gemm_128x64x96", 8, 8, "ws", 14399, 98304, 6144, 98304),
    ("conv_12x12_3x3_c8_o16_s1", 8, 8, "ws", 2195, 14400, 1152, 14400),
    ("conv_15x15_5x5_c3_o6_s2", 8, 8, "ws", 579, 2700, 450, 2160),
    ("lenet_conv2_14x14_5x5_c6_o16", 8, 8, "ws", 4635, 30000, 2400, 30400),
    ("gemm_64x100x40", 8, 8, "is", 6447, 6400, 32000, 33280),
    ("gemm_37x29x50", 8, 8, "is", 1439, 1073, 7250, 7400),
    ("gemm_128x64x96", 8, 8, "is", 15103, 8192, 98304, 98304),
    ("conv_12x12_3x3_c8_o16_s1", 8, 8, "is", 4445, 7200, 14976, 14400),
    ("conv_15x15_5x5_c3_o6_s2", 8, 8, "is", 1399, 2700, 2250, 2160),
    ("lenet_conv2_14x14_5x5_c6_o16", 8, 8, "is", 9385, 15000, 31200, 30400),
    ("gemm_64x100x40", 32, 16, "os", 875, 19200, 8000, 2848),
    ("gemm_37x29x50", 32, 16, "os", 599, 4292, 2900, 2234),
    ("gemm_128x64x96", 32, 16, "os", 2639, 49152, 24576, 13440),
    ("conv_12x12_3x3_c8_o16_s1", 32, 16, "os", 471, 7200, 4608, 1792),
    ("conv_15x15_5x5_c3_o6_s2", 32, 16, "os", 241, 2700, 900, 312),
    ("lenet_conv2_14x14_5x5_c6_o16", 32, 16, "os", 783, 15000, 9600, 1792),
    ("gemm_64x100x40", 32, 16, "ws", 1703, 19200, 4000, 10240),
    ("gemm_37x29x50", 32, 16, "ws", 459, 4292, 1450, 1850),
    ("gemm_128x64x96", 32, 16, "ws", 2471, 49152, 6144, 24576),
    ("conv_12x12_3x3_c8_o16_s1", 32, 16, "ws", 533, 7200, 1152, 4800),
    ("conv_15x15_5x5_c3_o6_s2", 32, 16, "ws", 341, 2700, 450, 648),
    ("lenet_conv2_14x14_5x5_c6_o16", 32, 16, "ws", 889, 15000, 2400, 8000),
    ("gemm_64x100x40", 32, 16, "is", 1887, 6400, 16000, 10240),
    ("gemm_37x29x50", 32, 16, "is", 383, 1073, 4350, 1850),
    ("gemm_128x64x96", 32, 16, "is", 2783, 8192, 49152, 24576),
    ("conv_12x12_3x3_c8_o16_s1", 32, 16, "is", 1973, 7200, 8064, 4800),
    ("conv_15x15_5x5_c3_o6_s2", 32, 16, "is", 755, 2700, 1350, 648),
    ("lenet_conv2_14x14_5x5_c6_o16", 32, 16, "is", 3289, 15000, 16800, 8000),
]


def _mkn(layer):
    spec = LAYERS[layer]
    if spec[0] == "gemm":
        return spec[1:]
    _, h, w, kh, kw, c, o, s = spec
    oh, ow = math.ceil((h - kh + s) / s), math.ceil((w - kw + s) / s)
    return oh * ow, kh * kw * c, o


@pytest.mark.parametrize("layer, rows, cols, dataflow, cycles, ifmap, filt, ofmap", EXPECTED)
def test_closed_forms_equal_scalesim(layer, rows, cols, dataflow, cycles, ifmap, filt, ofmap):
    m, k, n = _mkn(layer)
    assert compute_cycles(m, k, n, rows, cols, dataflow, "scalesim") == cycles
    assert compute_cycles(m, k, n, rows, cols, dataflow, "accelsim") == cycles + 1
    reads = sram_accesses(m, k, n, rows, cols, dataflow)
    assert (reads[0], reads[1]) == (ifmap, filt)
    fa, fb, _ = fold_grid(m, k, n, rows, cols, dataflow)
    quirk = fa * fb * (rows + cols) if dataflow == "os" else 0
    assert reads[2] + quirk == ofmap


def _single_layer_program(layer, pads):
    spec = LAYERS[layer]
    rng = np.random.default_rng(0)
    if spec[0] == "gemm":
        _, m, k, n = spec
        w = rng.standard_normal((k, n)).astype(np.float32)
        inst = Instruction("matmul", layer, ("x", "w"), ("y",))
        return Program((TensorSpec("x", "float32", (m, k)),), (TensorSpec("y", "float32", (m, n)),),
                       {"w": Parameter("w", (k, n), "l")}, {"w": w}, {}, (inst,)), {"x": (m, k), "y": (m, n)}
    _, h, wd, kh, kw, c, o, s = spec
    w = rng.standard_normal((o, c, kh, kw)).astype(np.float32)
    oh = (h + 2 * pads - kh) // s + 1
    ow = (wd + 2 * pads - kw) // s + 1
    inst = Instruction("conv", layer, ("x", "w"), ("y",), {
        "strides": (s, s), "pads": (pads,) * 4, "dilations": (1, 1), "group": 1})
    prog = Program((TensorSpec("x", "float32", (1, c, h, wd)),), (TensorSpec("y", "float32", (1, o, oh, ow)),),
                   {"w": Parameter("w", w.shape, "l")}, {"w": w}, {}, (inst,))
    return prog, {"x": (1, c, h, wd), "y": (1, o, oh, ow)}


def _big_sram(rows, cols, dataflow):
    """SRAMs large enough that every layer is one tile (as in the SCALE-Sim runs); 1-byte words."""
    return load_config("hbm_datacenter", [
        f"array.rows={rows}", f"array.cols={cols}", f"array.dataflow={dataflow}",
        "precision.weight_bytes=1", "precision.activation_bytes=1", "precision.accumulator_bytes=1", "precision.scale_bytes=0"])


@pytest.mark.parametrize("layer, rows, cols, dataflow, cycles, ifmap, filt, ofmap", EXPECTED)
def test_simulate_reports_scalesim_cycles_and_sram_reads(layer, rows, cols, dataflow, cycles, ifmap, filt, ofmap):
    # conv_15x15 with stride 2: SCALE-Sim's ⌈(15-5+2)/2⌉ = 6 equals the real floor((15-5)/2)+1 = 6
    prog, shapes = _single_layer_program(layer, pads=0)
    sched = simulate(prog, shapes, _big_sram(rows, cols, dataflow), convention="scalesim")
    ops = sched.ops
    assert ops["compute_cycles_reported"][0] == cycles
    assert ops["compute_cycles"][0] == cycles + 1
    assert ops["input_sram_read_bytes"][0] == ifmap
    assert ops["weight_sram_read_bytes"][0] == filt
    m, k, n = _mkn(layer)
    assert ops["output_sram_write_bytes"][0] == sram_accesses(m, k, n, rows, cols, dataflow)[2]


def test_padding_convention_switch():
    """A padded conv: "scalesim" ignores the pads (SCALE-Sim has none), "accelsim" uses the real
    output size. conv 12x12 3x3 pad 1 -> real 12x12 = 144 rows, SCALE-Sim 10x10 = 100 rows."""
    prog, shapes = _single_layer_program("conv_12x12_3x3_c8_o16_s1", pads=1)
    hw = _big_sram(8, 8, "os")
    scalesim = simulate(prog, shapes, hw, convention="scalesim")
    accelsim = simulate(prog, shapes, hw, convention="accelsim")
    assert scalesim.ops["m"][0] == 100 and scalesim.ops["compute_cycles_reported"][0] == 2235
    assert accelsim.ops["m"][0] == 144
    assert accelsim.ops["compute_cycles"][0] == math.ceil(144 / 8) * 2 * (72 + 8 + 8 - 2)
