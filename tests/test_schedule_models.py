"""Schedule invariants on zoo ONNX models for every preset: capacity, HBM coverage of every
used parameter byte, read windows, and the tile-by-tile replay of every GEMM (fp32 data: equal
to the golden output up to summation-order rounding).

Models: the bundled lenet5 and dlrm_small, and quick builds of the zoo's resnet18 (BatchNorm
folded by the legacy exporter), dlrm_bag (EmbeddingBag Loops) and tinybert_tweets (attention)."""
from __future__ import annotations

import numpy as np
import pytest

from accelsim.config import list_presets, load_config
from accelsim.schedule import simulate
from accelsim.schedule.replay import replay

import frontend
from accelsim import bundled


ZOO_BUILDERS = {
    "resnet18": ("benchmarks.models.resnet", "build"),
    "dlrm_bag": ("benchmarks.models.dlrm", "build_bag"),
    "tinybert_tweets": ("benchmarks.models.bert", "build_tinybert"),
}


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory):
    import importlib

    paths = {name: bundled.path(name) / "model.onnx" for name in ("lenet5", "dlrm_small")}
    for name, (module, function) in ZOO_BUILDERS.items():
        folder = tmp_path_factory.mktemp(name)
        getattr(importlib.import_module(module), function)(folder, quick=True)
        paths[name] = folder / "model.onnx"
    return paths


def _golden(path, batch=4):
    from accelsim import executor

    program = frontend.load_onnx(path)
    with np.load(path.parent / "eval_inputs.npz") as data:
        inputs = {k: data[k] for k in data.files if k in program.input_names}
    if len({v.shape[0] for v in inputs.values()}) == 1:  # batch-major (not flat bag indices)
        inputs = {k: v[:batch] for k, v in inputs.items()}
    cache = executor.run(program, inputs, keep_intermediates=True).cache
    return program, cache


@pytest.mark.parametrize("preset", list_presets())
@pytest.mark.parametrize("model", ["lenet5", "dlrm_small", *ZOO_BUILDERS])
def test_zoo_model_invariants(model, preset, model_paths):
    program, cache = _golden(model_paths[model])
    shapes = {k: tuple(np.shape(v)) for k, v in cache.items()}
    # bundled models: weights stored fp32 (4 B); zoo models: the preset's own weight precision
    # (tpu_v1's 128 KiB weight slots cannot hold a 256-row fp32 tile of ResNet-18's layer2+)
    overrides = ["precision.weight_bytes=4"] if model in ("lenet5", "dlrm_small") else []
    sched = simulate(program, shapes, load_config(preset, overrides), index_values=cache)
    res = sched.residency
    c = res.cols
    assert np.all(c["write_cycle"] < c["first_read"]) and np.all(c["last_read"] < c["evict_cycle"])
    for structure in ("weight_sram", "embedding_sram", "pe"):
        _, live, dead = res.occupancy(structure, 301)
        assert np.all(live + dead <= res.capacity_bits[structure])
    counts = sched.hbm.size_bytes // sched.hbm.element_bytes  # parameters, then int8 scales if stored
    seen = {n: np.zeros(int(k), dtype=bool) for n, k in zip(sched.hbm.parameter_names, counts)}
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
        if sched.hw.precision.stores_scales:  # the scales of what was read (tables: of the rows read)
            scales = seen[f"{name}#scale"]
            assert scales.all() if rows.all() or scales.size == 1 else np.array_equal(scales, rows), name
    for name, y in replay(sched, program, cache).items():
        inst = next(i for i in program.instructions if i.name == name)
        np.testing.assert_allclose(y, cache[inst.outputs[0]], rtol=1e-4, atol=1e-4)
