"""int8 scales as stored parameters: PVF faults in them, their residency, and partial hits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accelsim import executor, storage
from accelsim.config import load_config
from faults.avf.context import AvfContext
from faults.avf.sites import Site
from faults.common.fault_models import FaultModel
from faults.common.scales import draw_scale, scale_corruption, stored_scales
from faults.inject import ElementHit, FastInjector, Fault, HitFault

BUNDLED = Path(__file__).resolve().parents[1] / "accelsim" / "bundled"


def _load(model: str, batch: int = 8):
    from frontend import load_onnx

    program = load_onnx(str(BUNDLED / model / "model.onnx"))
    with np.load(BUNDLED / model / "eval_inputs.npz") as data:
        inputs = {k: data[k][:batch] for k in data.files}
    return program, inputs


def test_a_scale_fault_rescales_its_channel_exactly():
    """A flipped scale bit changes every element of that channel to q · s' (and nothing else),
    and the fast path's output equals a full executor run with those values, bit for bit."""
    program, inputs = _load("lenet5")
    inj = FastInjector(program, inputs, "int8")
    spec = program.parameters["fc1.weight"]  # [120, 400], one scale per output row
    st = inj.stored("fc1.weight")
    corruption = draw_scale(FaultModel("sbf", positions=(25,)), st, spec.shape, spec.channel_axis,
                            np.random.default_rng(4))
    (c,) = corruption.channels
    assert corruption.index.tolist() == list(range(c * 400, (c + 1) * 400))
    q = st.bits.reshape(120, 400)[c].view(np.int8).astype(np.float32)
    s_new = np.float32(corruption.new_scales[0])
    assert s_new.view(np.uint32) == np.float32(corruption.old_scales[0]).view(np.uint32) ^ (1 << 25)
    value = inj.corrupted_value(Fault("fc1.weight", corruption, np.arange(8)))
    expected = storage.encode(program.parameter_values["fc1.weight"], "int8", 0).decode()
    expected[c] = q * s_new
    assert np.array_equal(value.view(np.uint32), expected.view(np.uint32))
    fast = inj.evaluate([Fault("fc1.weight", corruption, np.arange(8))])[0].output
    full = executor.run(program, inputs, dtype="int8", parameter_values={"fc1.weight": value})
    assert np.array_equal(fast.view(np.uint32), full.outputs["logits"].view(np.uint32))


@pytest.mark.parametrize("model,param", [("lenet5", "fc1.weight#scale"), ("lenet5", "fc2.bias#scale"),
                                         ("dlrm_small", "emb.3.weight#scale")])
def test_partial_scale_patches_equal_the_parameter_fault(model, param):
    """A scale element flipped in HBM before its first transfer reaches every read: the partial
    patches (forced, full=False) give the parameter-level fault's outputs to fp32 rounding."""
    program, inputs = _load(model)
    ctx = AvfContext(program, inputs, load_config("tpu_v1"))  # int8 with stored scales
    layout = ctx.schedule.hbm
    p = layout.parameter_names.index(param)
    element = 0 if "bias" in param else 3
    if "emb" in param:  # a row the batch looks up
        element = int(next(w for w in ctx.schedule.works if getattr(w, "table", None) == param[:-6]).rows[0])
    address = int(layout.base_bytes[p]) + 4 * element + 3  # the scale's exponent byte
    res = ctx.resolver.resolve(Site("hbm", address, 5, 0))
    assert res.status == "live" and res.full and res.param == param
    kinds = {u.kind for u in res.uses}
    assert kinds <= {"scale", "bias_scale", "lookup_scale"} and kinds
    bits = ctx.injector.stored_bits(param, element) ^ (1 << res.element_bit)
    rows = np.arange(ctx.batch)
    patched, exact = ctx.injector.evaluate_hits([
        HitFault((ElementHit(param, element, bits, res.uses, False),), rows),
        HitFault((ElementHit(param, element, bits, res.uses, True),), rows)])
    np.testing.assert_allclose(patched.output, exact.output, rtol=2e-5, atol=1e-5)
    assert not np.array_equal(exact.output, ctx.fast.golden_output)
    # the scale pseudo-parameter holds the int8 tensor's own fp32 scales
    base = param.removesuffix("#scale")
    scales = stored_scales(ctx.fast.stored(base)).bits.view(np.float32)
    assert np.array_equal(scales, storage.int8_scales(program.parameter_values[base],
                                                      program.parameters[base].channel_axis).reshape(-1))


def test_scale_corruption_of_chosen_bits():
    program, _ = _load("lenet5")
    spec = program.parameters["conv2.weight"]
    st = storage.encode(program.parameter_values["conv2.weight"], "int8", spec.channel_axis)
    old = stored_scales(st).bits[[2, 5]]
    c = scale_corruption(st, spec.shape, spec.channel_axis, [2, 5], old ^ np.uint32(1 << 31))
    assert c.nflips == 2 and c.channels.tolist() == [2, 5] and c.index.size == 2 * 6 * 25
    assert np.array_equal(c.new_scales, -c.old_scales)
