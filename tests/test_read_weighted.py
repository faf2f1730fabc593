"""Read-weighted ACE (accelsim.schedule.reach) against the site resolver, an independent path:
sites drawn uniformly over the occupied bit-cycles and resolved (no network run) reach, on
average, exactly the share of reads the closed forms integrate."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim.config import load_config
from faults.avf.context import AvfContext
from faults.avf.direct import draw_site, occupied

BUNDLED = Path(__file__).resolve().parents[1] / "accelsim" / "bundled"


def _ctx(model: str, preset: str, *sets: str) -> AvfContext:
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / model / "model.onnx"))
    with np.load(BUNDLED / model / "eval_inputs.npz") as data:
        inputs = {k: data[k][:8] for k in data.files}
    return AvfContext(program, inputs, load_config(preset, ["precision.weight_bytes=4", *sets]), "fp32")


CASES = [("lenet5", "edge_npu", "ws"), ("lenet5", "edge_npu", "os"), ("lenet5", "tpu_v1", "is"),
         ("dlrm_small", "edge_npu", "ws"), ("dlrm_small", "hbm_datacenter", "os")]


@pytest.mark.parametrize("model,preset,dataflow", CASES)
def test_read_weighted_ace_equals_mean_resolved_share(model, preset, dataflow):
    ctx = _ctx(model, preset, f"array.dataflow={dataflow}")
    res = ctx.schedule.residency
    for structure in ("hbm", "weight_sram", "embedding_sram", "pe"):
        rows = res.select(structure)
        if not rows.size:
            continue
        exact = float(res.ace_read_weighted[rows].sum())
        assert exact <= float(res["ace_bit_cycles"][rows].sum()) * (1 + 1e-12)
        n = 2500
        mode = "uniform" if structure == "hbm" else "occupied"
        share = np.array([ctx.resolver.resolve(draw_site(ctx, structure, 17, t, mode=mode)[0]).share
                          for t in range(n)])
        scale = (occupied(ctx, structure)[2] if mode == "occupied" else 1.0) * \
            ctx.resolver.capacity_bits(structure) * ctx.total_cycles
        estimate, sigma = scale * share.mean(), scale * share.std(ddof=1) / np.sqrt(n)
        assert abs(estimate - exact) <= 5 * sigma + 1e-9 * exact, (structure, estimate, exact, sigma)


def test_reach_is_below_plain_ace_where_reads_are_partial():
    """ws PE registers: a flip mid-fold reaches only later rows, so the read-weighted ACE is a
    fraction of the plain one; HBM on tpu_v1 (every weight transferred once, before any read)
    keeps all of it."""
    ctx = _ctx("lenet5", "edge_npu")
    res = ctx.schedule.residency
    pe = res.select("pe")
    assert res.ace_read_weighted[pe].sum() < 0.5 * res["ace_bit_cycles"][pe].sum()
    ctx = _ctx("lenet5", "tpu_v1")
    hbm = ctx.schedule.residency.select("hbm")
    rw, ace = ctx.schedule.residency.ace_read_weighted[hbm], ctx.schedule.residency["ace_bit_cycles"][hbm]
    np.testing.assert_allclose(rw, ace, rtol=1e-12)
