"""Protected bank placement (accelsim.schedule.placement): chosen parameters live in their own
weight-SRAM bank and HBM region, sized and addressed as configured, without overlaps."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim import executor
from accelsim.config import load_config
from accelsim.schedule import ScheduleError, simulate
from accelsim.schedule.placement import ProtectedBank

BUNDLED = Path(__file__).resolve().parents[1] / "accelsim" / "bundled"


@pytest.fixture(scope="module")
def lenet():
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / "lenet5" / "model.onnx"))
    with np.load(BUNDLED / "lenet5" / "eval_inputs.npz") as data:
        inputs = {k: data[k][:8] for k in data.files}
    cache = executor.run(program, inputs, keep_intermediates=True).cache
    return program, cache


def _schedule(lenet, bank, *sets):
    program, cache = lenet
    hw = load_config("edge_npu", ["precision.weight_bytes=4", *sets])
    return hw, simulate(program, {k: np.shape(v) for k, v in cache.items()}, hw, index_values=cache, bank=bank)


def test_placed_tiles_live_in_the_protected_bank(lenet):
    chosen = {"conv2.weight", "fc3.weight"}
    bank = ProtectedBank(chosen, weight_sram_bytes=8192, hbm=True)
    hw, s = _schedule(lenet, bank)
    res = s.residency
    c = res.cols
    top = hw.weight_sram.size_bytes
    names = np.asarray(res.parameter_names)[c["param"]]
    rows = res.select("weight_sram")
    placed = np.isin(names[rows], list(chosen | {"conv2.bias", "fc3.bias"}))
    assert placed.any() and (~placed).any()
    assert np.all(c["addr_lo"][rows][placed] >= top - 8192) and np.all(c["addr_hi"][rows][placed] <= top)
    assert np.all(c["addr_hi"][rows][~placed] <= top - 8192)
    # no two copies alive at the same cycle share a byte (the banks keep their slots apart)
    for i in rows:
        alive = rows[(c["write_cycle"][rows] + 1 < c["evict_cycle"][i]) & (c["evict_cycle"][rows] > c["write_cycle"][i] + 1)]
        alive = alive[alive != i]
        assert not ((c["addr_lo"][alive] < c["addr_hi"][i]) & (c["addr_hi"][alive] > c["addr_lo"][i])).any()
    # HBM: the chosen parameters first, in program order, then the others
    first = [n for n in s.hbm.parameter_names[:2]]
    assert first == ["conv2.weight", "fc3.weight"] and s.hbm.base_bytes[0] == 0
    # the protected bank's slot (4 KiB) bounds the placed tiles: fc3 (84x10 fp32 = 3360 B) fits whole
    fc3 = rows[names[rows] == "fc3.weight"]
    assert len(fc3) == 1 and c["addr_hi"][fc3[0]] - c["addr_lo"][fc3[0]] == 84 * 10 * 4


def test_shrinking_the_unprotected_bank_changes_the_others_tiling(lenet):
    _, plain = _schedule(lenet, None)
    _, banked = _schedule(lenet, ProtectedBank({"fc3.weight"}, weight_sram_bytes=16384))
    tiles = dict(zip(plain.op_names, plain.tiles))
    banked_tiles = dict(zip(banked.op_names, banked.tiles))
    assert any(tiles[n] != banked_tiles[n] for n in tiles if tiles[n] is not None)
    assert banked.total_cycles != plain.total_cycles


def test_bad_banks_are_one_line_errors(lenet):
    with pytest.raises(ScheduleError, match="multiple of"):
        _schedule(lenet, ProtectedBank({"fc1.weight"}, weight_sram_bytes=1000))
    with pytest.raises(ScheduleError, match="unknown parameter 'nope'"):
        _schedule(lenet, ProtectedBank({"nope"}, weight_sram_bytes=4096))
    with pytest.raises(ScheduleError, match="weight_sram slot"):  # 256 B slots: no 16x16 fp32 (1 KiB) block
        _schedule(lenet, ProtectedBank({"fc1.weight"}, weight_sram_bytes=512))
