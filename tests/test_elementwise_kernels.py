"""Elementwise/normalisation semantics the ONNX conformance cases cannot check.

(Cast to FLOAT16/BFLOAT16 is excluded from conformance because the IR keeps fp32 storage;
its rounding is checked here. erf/gelu are checked against float64 math at fp32 precision.)
"""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from accelsim import executor
from accelsim.ir import Instruction
from accelsim.kernels import KERNELS
from accelsim.storage import fp32_to_bf16_bits
from frontend import lower_model


def _cast_model(to: int, back_to_float: bool = False) -> onnx.ModelProto:
    nodes = [helper.make_node("Cast", ["x"], ["c" if back_to_float else "y"], name="cast", to=to)]
    if back_to_float:
        nodes.append(helper.make_node("Cast", ["c"], ["y"], name="back", to=TensorProto.FLOAT))
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT if back_to_float else to, [None])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def test_cast_to_float16_rounds_to_the_fp16_grid_in_fp32():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32) * 100
    x[:3] = [1e6, -7e4, np.nan]
    y = executor.run(lower_model(_cast_model(TensorProto.FLOAT16)), {"x": x}).outputs["y"]
    assert y.dtype == np.float32
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(y, x.astype(np.float16).astype(np.float32))


def test_cast_to_bfloat16_rounds_to_nearest_even():
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    x[0] = np.float32(1.0) + np.float32(2.0**-8)  # exact tie -> even (1.0)
    program = lower_model(_cast_model(TensorProto.BFLOAT16, back_to_float=True))
    y = executor.run(program, {"x": x}).outputs["y"]
    expected = (fp32_to_bf16_bits(x).astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(y, expected)
    assert y[0] == 1.0


def test_cast_float_to_int_truncates_toward_zero():
    x = np.array([-2.7, -0.5, 0.5, 2.7], np.float32)
    y = executor.run(lower_model(_cast_model(TensorProto.INT32)), {"x": x}).outputs["y"]
    assert y.dtype == np.int32 and y.tolist() == [-2, 0, 0, 2]


def _run(op: str, *args, **attrs) -> np.ndarray:
    inst = Instruction(op, op, tuple(f"i{k}" for k in range(len(args))), ("y",), attrs)
    return KERNELS[op](inst, list(args))[0]


def test_erf_and_gelu_are_fp32_rounded_float64_math():
    x = np.linspace(-6, 6, 2001, dtype=np.float32)
    ref_erf = np.array([math.erf(float(v)) for v in x])
    y = _run("erf", x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref_erf.astype(np.float32), rtol=0, atol=0)
    ref_gelu = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    np.testing.assert_allclose(_run("gelu", x, approximate="none"), ref_gelu.astype(np.float32),
                               rtol=0, atol=0)


def test_integer_div_truncates_and_mod_follows_divisor_sign():
    a = np.array([7, -7, 7, -7], np.int32)
    b = np.array([2, 2, -2, -2], np.int32)
    assert _run("div", a, b).tolist() == [3, -3, -3, 3]
    assert _run("mod", a, b, fmod=0).tolist() == [1, 1, -1, -1]
    assert _run("mod", a, b, fmod=1).tolist() == [1, -1, 1, -1]


@pytest.mark.parametrize("op, empty", [("reduce_max", -np.inf), ("reduce_min", np.inf),
                                       ("reduce_sum", 0.0), ("reduce_prod", 1.0)])
def test_empty_reductions_give_the_identity(op, empty):
    x = np.zeros((2, 0, 3), np.float32)
    y = _run(op, x, axes=(1,), keepdims=0, noop_with_empty_axes=0)
    assert y.shape == (2, 3) and y.dtype == np.float32 and np.all(y == empty)


@pytest.mark.parametrize(
    "op_type, opset, attrs, extra_inputs",
    [
        ("Softmax", 11, {"axis": 1}, {}),           # coerce to 2-D at axis 1
        ("LogSoftmax", 11, {}, {}),                  # default axis 1 before opset 13
        ("Hardmax", 11, {"axis": 2}, {}),
        ("Softmax", 13, {"axis": 1}, {}),            # one axis from opset 13
        ("Clip", 6, {"min": -0.5, "max": 0.25}, {}),  # bounds as attributes before opset 11
        ("ReduceSum", 11, {"axes": [0, 2], "keepdims": 0}, {}),
        ("ReduceMean", 13, {"axes": [-1]}, {}),
        ("ReduceMax", 18, {"keepdims": 0}, {"axes": np.array([1], np.int64)}),
        ("ReduceSum", 13, {"noop_with_empty_axes": 1}, {}),
    ],
)
def test_opset_forms_match_onnxruntime(op_type, opset, attrs, extra_inputs):
    """Opset-dependent forms; onnxruntime is the reference (onnx's ReferenceEvaluator
    ignores the pre-13 coerce-to-2-D softmax rule)."""
    import onnxruntime as ort
    from onnx import numpy_helper

    inputs = ["x"] + list(extra_inputs)
    graph = helper.make_graph(
        [helper.make_node(op_type, inputs, ["y"], name="n", **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in extra_inputs.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0]
    got = executor.run(lower_model(model), {"x": x}).outputs["y"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
