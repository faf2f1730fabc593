"""Schedule invariants on the bundled ONNX models (lenet5, dlrm_small) for every preset:
capacity, HBM coverage of every used parameter byte, read windows, and the tile-by-tile replay
of every GEMM (fp32 data: equal to the golden output up to summation-order rounding).

Skipped while the frontend or the bundled models are not there (they are built by other work)."""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.config import list_presets, load_config
from accelsim.schedule import simulate
from accelsim.schedule.replay import replay

import frontend
from accelsim import bundled


def _bundled(name):
    return bundled.path(name) / "model.onnx"


def _golden(name, batch=4):
    from accelsim import executor

    path = _bundled(name)
    program = frontend.load_onnx(path)
    with np.load(path.parent / "eval_inputs.npz") as data:
        inputs = {k: data[k][:batch] for k in data.files if k in program.input_names}
    cache = executor.run(program, inputs, keep_intermediates=True).cache
    return program, cache


@pytest.mark.parametrize("preset", list_presets())
@pytest.mark.parametrize("model", ["lenet5", "dlrm_small"])
def test_bundled_model_invariants(model, preset):
    program, cache = _golden(model)
    shapes = {k: tuple(np.shape(v)) for k, v in cache.items()}
    sched = simulate(program, shapes, load_config(preset, ["precision.weight_bytes=4"]), index_values=cache)
    res = sched.residency
    c = res.cols
    assert np.all(c["write_cycle"] < c["first_read"]) and np.all(c["last_read"] < c["evict_cycle"])
    for structure in ("weight_sram", "embedding_sram", "pe"):
        _, live, dead = res.occupancy(structure, 301)
        assert np.all(live + dead <= res.capacity_bits[structure])
    seen = {n: np.zeros(p.size, dtype=bool) for n, p in program.parameters.items()}
    for row in res.select("hbm"):
        seen[res.parameter_names[c["param"][row]]][res.elements(row).reshape(-1)] = True
    # expected: every element, except tables read only by lookups: exactly the looked-up rows
    expected = {}
    for inst in program.instructions:
        for pos, name in enumerate(inst.inputs):
            if name not in program.parameters:
                continue
            param = program.parameters[name]
            lookup = pos == 0 and (inst.op == "embedding_bag" or (inst.op == "gather" and inst.attrs["axis"] == 0))
            rows = np.zeros(param.shape[0], dtype=bool)
            if lookup:
                rows[np.asarray(cache[inst.inputs[1]]).reshape(-1)] = True
            else:
                rows[:] = True
            expected[name] = expected.get(name, rows) | rows
    for name, rows in expected.items():
        got = seen[name].reshape(len(rows), -1)
        assert np.array_equal(got.all(axis=1), rows) and np.array_equal(got.any(axis=1), rows), name
    for name, y in replay(sched, program, cache).items():
        inst = next(i for i in program.instructions if i.name == name)
        np.testing.assert_allclose(y, cache[inst.outputs[0]], rtol=1e-4, atol=1e-4)
