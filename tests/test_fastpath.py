"""Fast exact injection: equals a full re-run with the corrupted parameter, trial by trial."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import pvf_toys
from accelsim import executor
from faults.common import fault_models as models, outcome as oc
from faults.inject.engine import FastInjector, Fault

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = Path(os.environ.get("ACCELSIM_PVF_MODELS", ROOT / "accelsim" / "bundled"))


def _reference(program, inputs, dtype, fault, inj):
    value = inj.corrupted_value(fault)
    out = executor.run(program, inputs, dtype=dtype, parameter_values={fault.param: value})
    return out.outputs[inj.output][fault.rows]


def _faults(inj, program, spec, n, seed, batch, max_rows=3):
    model = models.parse_fault(spec)
    names = [p for p in program.parameters]
    out = []
    for t in range(n):
        rng = np.random.default_rng([seed, t])
        param = names[rng.integers(len(names))]
        c = models.draw(model, inj.stored(param), rng)
        rows = np.sort(rng.choice(batch, size=int(rng.integers(1, max_rows + 1)), replace=False))
        out.append(Fault(param, c, rows))
    return out


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.view(f"u{a.itemsize}")


def _check(program, inputs, dtype, spec, n=150, seed=0, budget=None):
    """Every fault's output is bit-identical to a full re-run of the executor on the whole
    batch with the corrupted parameter (its rows), and early masked exactly when that re-run's
    output equals the golden one."""
    inj = FastInjector(program, inputs, dtype, budget_bytes=budget)
    batch = inj.batch
    faults = _faults(inj, program, spec, n, seed, batch)
    results = inj.evaluate(faults)
    early = 0
    for f, res in zip(faults, results):
        ref = _reference(program, inputs, dtype, f, inj)
        assert res.output.shape == ref.shape
        assert np.array_equal(_bits(res.output), _bits(ref)), (f.param, f.corruption.index, f.corruption.bit)
        unchanged = np.array_equal(_bits(ref), _bits(inj.golden_output[f.rows]))
        assert res.early_masked == unchanged, (f.param, f.corruption.index)
        early += int(res.early_masked)
    return inj, results, early


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16", "int8"])
@pytest.mark.parametrize("spec", ["sbf", "burst:len=3,word=32", "mbf:ber=0.002", "stuck1", "random"])
def test_mlp_equals_full_rerun(dtype, spec):
    program = pvf_toys.mlp()
    inj, results, _ = _check(program, pvf_toys.inputs_for(program), dtype, spec)
    assert all(inj.stacking_verdicts.values()) and inj.stacking_verdicts  # every gemm start was stacked


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "int8"])
def test_cnn_equals_full_rerun(dtype):
    program = pvf_toys.cnn()
    inj, results, early = _check(program, pvf_toys.inputs_for(program, batch=12), dtype, "sbf", n=200)
    assert inj.stacking_verdicts.get(0) and inj.stacking_verdicts.get(3)
    assert 0 < early < 200


def test_tied_weights_and_generic_ops():
    program = pvf_toys.tied()
    inj, results, _ = _check(program, pvf_toys.inputs_for(program), "fp32", "sbf", n=200)
    assert len(inj.gold.readers["shared.weight"]) == 2  # corrupted value seen by both readers


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_dlrm_toy_embeddings(dtype):
    program, inputs = pvf_toys.dlrm(batch=24)
    inj, results, early = _check(program, inputs, dtype, "sbf", n=300)
    # an embedding fault changes only samples that look its row up: most are masked at once
    emb = [r for r in results if r.start in ("g0", "bag1")]
    assert emb and sum(r.early_masked for r in emb) > len(emb) // 2


def test_embedding_row_hits_only_its_samples():
    program, inputs = pvf_toys.dlrm(batch=24)
    inj = FastInjector(program, inputs)
    row = int(inputs["idx0"][5, 1])
    users = np.nonzero((inputs["idx0"] == row).any(axis=1))[0]
    others = np.setdiff1d(np.arange(24), users)[:3]
    stored = inj.stored("emb0.weight")
    c = models.draw(models.FaultModel("sbf"), stored, np.random.default_rng(0), bit=30)
    c = models.Corruption(np.array([row * 6 + 2]), stored.bits.reshape(-1)[[row * 6 + 2]],
                          stored.bits.reshape(-1)[[row * 6 + 2]] ^ np.uint32(1 << 28), 28, 1)
    hit, miss = inj.evaluate([Fault("emb0.weight", c, users), Fault("emb0.weight", c, others)])
    assert not hit.early_masked and miss.early_masked
    assert np.all(hit.output != inj.golden_output[users])
    assert np.array_equal(miss.output, inj.golden_output[others])


def test_stuck_at_same_value_is_early_masked():
    program = pvf_toys.mlp()
    inputs = pvf_toys.inputs_for(program)
    inj = FastInjector(program, inputs)
    stored = inj.stored("fc1.weight")
    bits = int(stored.bits.reshape(-1)[7])
    kind = "stuck1" if bits >> 30 & 1 else "stuck0"
    c = models.draw(models.FaultModel(kind), stored, np.random.default_rng(0), bit=30)
    c = models.Corruption(np.array([7]), c.old_bits * 0 + np.uint32(bits), c.old_bits * 0 + np.uint32(bits), 30, 0)
    (res,) = inj.evaluate([Fault("fc1.weight", c, np.array([1, 2]))])
    assert res.early_masked and np.array_equal(res.output, inj.golden_output[[1, 2]])


def test_records_and_outcomes_of_a_known_fault():
    program = pvf_toys.mlp()
    inputs = pvf_toys.inputs_for(program)
    inj = FastInjector(program, inputs)
    stored = inj.stored("fc2.bias")
    g_top = int(np.argmax(inj.golden_output[0]))
    # turn the bias of another class into a huge value: top-1 must move to that class
    other = (g_top + 1) % 10
    old = stored.bits.reshape(-1)[[other]]
    new = (np.array([3.0e6], dtype=np.float32)).view(np.uint32)
    c = models.Corruption(np.array([other]), old, new, -1, 1)
    (res,) = inj.evaluate([Fault("fc2.bias", c, np.array([0]))])
    rec = oc.compare(inj.golden_output[[0]], res.output, np.array([0]))
    assert rec["f_top1"][0] == other and rec["g_top1"][0] == g_top
    assert oc.parse_criterion("top1").trial_outcome(rec) == oc.SDC
    assert rec["dev"][0] == pytest.approx(3.0e6, rel=1e-3)
    inf = np.array([np.inf], dtype=np.float32).view(np.uint32)
    (res,) = inj.evaluate([Fault("fc2.bias", models.Corruption(np.array([other]), old, inf, -1, 1), np.array([0]))])
    rec = oc.compare(inj.golden_output[[0]], res.output, np.array([0]))
    assert rec["nonfinite"][0] and oc.parse_criterion("top1").trial_outcome(rec, nonfinite="due") == oc.DUE
    assert oc.parse_criterion("top1").trial_outcome(rec) == oc.SDC  # default policy: NaN/Inf is silent


# ---------------------------------------------------------------------------- vs onnxruntime
def _onnx_mlp(path: Path) -> None:
    import onnx
    from onnx import helper, numpy_helper, TensorProto

    rng = np.random.default_rng(3)
    w1 = (rng.standard_normal((32, 20)) / 4).astype(np.float32)
    b1 = (0.1 * rng.standard_normal(32)).astype(np.float32)
    w2 = (rng.standard_normal((32, 10)) / 5).astype(np.float32)
    b2 = (0.1 * rng.standard_normal(10)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="/fc1/Gemm", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="/relu/Relu"),
        helper.make_node("MatMul", ["hr", "fc2.weight"], ["m"], name="/fc2/MatMul"),
        helper.make_node("Add", ["m", "fc2.bias"], ["logits"], name="/fc2/Add"),
    ]
    graph = helper.make_graph(
        nodes, "toy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 20])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(a, n) for a, n in
         [(w1, "fc1.weight"), (b1, "fc1.bias"), (w2, "fc2.weight"), (b2, "fc2.bias")]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_exactness_against_onnxruntime_small(tmp_path):
    from frontend import load_onnx
    from faults.reference.exactness import exactness_check
    from faults.reference.onnx_naive import OnnxNaive

    path = tmp_path / "toy.onnx"
    _onnx_mlp(path)
    program = load_onnx(path)
    inputs = {"x": np.random.default_rng(0).standard_normal((40, 20)).astype(np.float32)}
    report = exactness_check(path, program, inputs, faults=300, seed=1, inputs_per_fault=2)
    assert report["params"] == 4
    assert report["mismatches"] == [], report["mismatches"][:3]
    assert report["inputs_compared"] + report["set_aside"] == 600
    assert report["set_aside"] <= 6
    assert report["outcomes"][1] > 5  # some SDCs were really compared
    # the naive "feed" mode equals the literal initializer rewrite
    feed, rewrite = OnnxNaive(path, program), OnnxNaive(path, program, mode="rewrite")
    w = np.array(program.parameter_values["fc2.weight"])
    w[3, 4] = 1e4
    x = inputs["x"][:5]
    assert np.array_equal(feed.run({"x": x}, {"fc2.weight": w}), rewrite.run({"x": x}, {"fc2.weight": w}))
    assert not np.array_equal(feed.run({"x": x}, {"fc2.weight": w}), feed.run({"x": x}))


BUNDLED_CASES = [
    # (model, target, inputs per fault, faults, eval inputs)
    ("lenet5", None, 2, 500, 64),
    ("dlrm_small", None, 2, 500, 64),
    ("dlrm_small", "group=embedding", 0, 200, 512),  # all inputs: looked-up rows really get hit
    ("dlrm_small", "group=*mlp", 2, 300, 64),
]


@pytest.mark.parametrize("name,target,per_fault,n,n_eval", BUNDLED_CASES)
def test_exactness_bundled_models(name, target, per_fault, n, n_eval):
    folder = BUNDLED / name
    from frontend import load_onnx
    from faults.reference.exactness import exactness_check

    program = load_onnx(folder / "model.onnx")
    with np.load(folder / "eval_inputs.npz") as data:
        inputs = {k: data[k][:n_eval] for k in data.files}
    n_eval = min(n_eval, len(next(iter(inputs.values()))))
    report = exactness_check(folder / "model.onnx", program, inputs, faults=n, seed=7,
                             inputs_per_fault=per_fault, target=target)
    pairs = n * (per_fault or n_eval)
    assert report["mismatches"] == [], report["mismatches"][:3]
    assert report["set_aside"] + report["kernel_noise"] <= 0.02 * pairs
    assert report["inputs_compared"] >= 0.98 * pairs
    assert report["early_masked"] < n  # not everything trivially masked


# ---------------------------------------------------------------------------- rows, stacking, budget
@pytest.mark.parametrize("batch", [6, 20])  # 6: the batch equals the sequence length
def test_attention_block_equals_full_rerun(batch):
    program = pvf_toys.attention()
    inputs = pvf_toys.inputs_for(program, batch=batch)
    inj, results, early = _check(program, inputs, "fp32", "sbf", n=200, seed=3)
    gold = inj.gold
    assert gold.separable and not gold.structure.inexact
    assert {"xs", "hshape", "mshape"} <= gold.structure.meta  # shape arithmetic of the batch size
    assert gold.batch_tensors["f0"] == 6  # the FFN runs on flattened [B·S, 4H] rows
    assert 0 < early < 200 and any(inj.stacking_verdicts.values())


@pytest.mark.parametrize("name", ["mlp", "cnn", "attention", "dlrm"])
def test_budget_changes_nothing(name):
    if name == "dlrm":
        program, inputs = pvf_toys.dlrm(batch=24)
    else:
        program = getattr(pvf_toys, name)()
        inputs = pvf_toys.inputs_for(program, batch=12)
    full = FastInjector(program, inputs)
    tight = FastInjector(program, inputs, budget_bytes=0)
    assert tight.gold.kept_bytes < full.gold.kept_bytes
    faults = _faults(full, program, "sbf", 150, 5, full.batch)
    a = full.evaluate(faults)
    b = tight.evaluate([Fault(f.param, f.corruption, f.rows) for f in faults])
    for x, y in zip(a, b):
        assert np.array_equal(_bits(x.output), _bits(y.output)) and x.early_masked == y.early_masked


def test_a_fault_runs_on_its_rows_only(monkeypatch):
    """No kernel call of an injection sees the whole batch (200 rows, larger than any weight)."""
    from accelsim import kernels

    program = pvf_toys.attention()
    inputs = pvf_toys.inputs_for(program, batch=200)
    inj = FastInjector(program, inputs)
    faults = [f for f in _faults(inj, program, "sbf", 60, 9, inj.batch, max_rows=2)]
    seen = []
    for op, fn in list(kernels.KERNELS.items()):
        def spy(inst, args, fn=fn):
            seen.extend(np.shape(a)[0] for a in args if a is not None and np.ndim(a) >= 1)
            return fn(inst, args)
        monkeypatch.setitem(kernels.KERNELS, op, spy)
    results = inj.evaluate(faults)
    assert seen and max(seen) < 200
    assert sum(not r.early_masked for r in results) > 10  # faults really propagated


def test_stacking_does_not_change_a_fault():
    program = pvf_toys.attention()
    inputs = pvf_toys.inputs_for(program, batch=16)
    inj = FastInjector(program, inputs)
    faults = _faults(inj, program, "sbf", 80, 11, inj.batch)
    together = inj.evaluate(faults)
    for f, res in zip(faults, together):
        (alone,) = inj.evaluate([Fault(f.param, f.corruption, f.rows)])
        assert np.array_equal(_bits(alone.output), _bits(res.output)) and alone.early_masked == res.early_masked


def test_campaign_golden_budget_changes_no_stored_number(tmp_path, monkeypatch):
    import sqlite3

    from faults.pvf.campaign import run_campaign
    from faults.pvf.evaluator import BUDGET_ENV, golden_budget_bytes
    from faults.pvf.plan import CampaignConfig

    program = pvf_toys.attention()
    inputs = pvf_toys.inputs_for(program, batch=24)
    config = CampaignConfig(fault="sbf", by=("role",), trials=40, seed=3, chunk_size=16, inputs_per_trial=2)
    tables = []
    for budget in ("inf", "0"):
        monkeypatch.setenv(BUDGET_ENV, budget)
        out = tmp_path / budget
        run_campaign(program, inputs, config, str(out), workers=1, progress=False)
        db = sqlite3.connect(str(out / "trials.sqlite"))
        tables.append(db.execute("SELECT * FROM trials ORDER BY trial").fetchall())
        db.close()
    assert tables[0] and tables[0] == tables[1]
    monkeypatch.setenv(BUDGET_ENV, "0.5")
    assert golden_budget_bytes() == 1 << 29
    monkeypatch.setenv(BUDGET_ENV, "inf")
    assert golden_budget_bytes() is None
    monkeypatch.setenv(BUDGET_ENV, "-1")
    with pytest.raises(ValueError, match="GiB"):
        golden_budget_bytes()


def _bag_program(dense: bool, seed: int = 4):
    """Two embedding bags whose per-sample weights are expanded from one shared parameter (the
    dynamo DLRM export's pattern), optionally a dense batch-major input; inputs for 16 bags."""
    from accelsim.ir import Instruction, Parameter, Program, TensorSpec

    rng = np.random.default_rng(seed)
    width = 9 if dense else 8
    params = {"emb0": Parameter("emb0", (30, 4), "embedding.table0", "embedding", 0),
              "emb1": Parameter("emb1", (20, 4), "embedding.table1", "embedding", 0),
              "ones": Parameter("ones", (1,), "embedding.table0", "weight", None),
              "top": Parameter("top", (width, 2), "top_mlp.0", "weight", 1)}
    values = {k: rng.standard_normal(p.shape).astype(np.float32) for k, p in params.items()}
    bag = dict(mode="sum", include_last_offset=False, empty_value=0.0)
    insts = [Instruction("shape", "s0", ("ind0",), ("n0",), dict(start=0, end=None)),
             Instruction("expand", "w0", ("ones", "n0"), ("psw0",)),
             Instruction("embedding_bag", "bag0", ("emb0", "ind0", "off0", "psw0"), ("e0",), bag),
             Instruction("shape", "s1", ("ind1",), ("n1",), dict(start=0, end=None)),
             Instruction("expand", "w1", ("ones", "n1"), ("psw1",)),
             Instruction("embedding_bag", "bag1", ("emb1", "ind1", "off1", "psw1"), ("e1",), bag),
             Instruction("concat", "cat", ("e0", "e1") + (("dense",) if dense else ()), ("z",), dict(axis=1)),
             Instruction("matmul", "head", ("z", "top"), ("logits",))]
    specs = (TensorSpec("ind0", "int64", ("L0",)), TensorSpec("off0", "int64", ("batch",)),
             TensorSpec("ind1", "int64", ("L1",)), TensorSpec("off1", "int64", ("batch",)))
    if dense:
        specs += (TensorSpec("dense", "float32", ("batch", 1)),)
    program = Program(inputs=specs, outputs=(TensorSpec("logits", "float32", ("batch", 2)),), parameters=params,
                      parameter_values=values, constants={}, instructions=tuple(insts), name="bags")
    inputs = {}
    for t, rows in (("0", 30), ("1", 20)):
        lengths = rng.integers(1, 4, size=16)
        inputs["ind" + t] = rng.integers(0, rows, size=int(lengths.sum())).astype(np.int64)
        inputs["off" + t] = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    if dense:
        inputs["dense"] = rng.standard_normal((16, 1)).astype(np.float32)
    return program, inputs


def test_shared_bag_weights_dynamo_pattern():
    """Per-sample bag weights expanded from one parameter read by every bag (a multi-reader
    parameter whose readers are ragged): a fault's bags are cut out, bit-exact."""
    program, inputs = _bag_program(dense=True)
    inj, results, early = _check(program, inputs, "fp32", "sbf", n=120, seed=2)
    assert inj.gold.separable and len(inj.gold.readers["ones"]) == 2
    assert any(f.param == "ones" for f in _faults(inj, program, "sbf", 120, 2, inj.batch))
    # without a batch-major input the batch structure cannot be probed: whole-batch mode, exact,
    # early masked still judged on the fault's own rows
    program, inputs = _bag_program(dense=False)
    inj, results, early = _check(program, inputs, "fp32", "sbf", n=120, seed=2)
    assert not inj.gold.separable and 0 < early < 120
