"""Attribute defaults come from the ONNX operator schemas at the model's opset.

Expected values are the defaults in the ONNX operator documentation, written out here (not
read back from ``onnx.defs``): Gemm alpha = beta = 1.0, transA = transB = 0; LeakyRelu
alpha = 0.01; Softmax axis = 1 before opset 13 and -1 from 13. ONNX FLOAT attributes are
float32, so the IR holds LeakyRelu's default as ``float(np.float32(0.01))`` — the same value
an explicit ``alpha=0.01`` gives. Results are also checked against onnxruntime.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from accelsim import executor
from accelsim.errors import UserError
from frontend import FrontendError, lower_model
from frontend.attributes import schema_defaults

X_SHAPE = (2, 4)  # Gemm input A [M, K]
W_SHAPE = (4, 3)  # Gemm input B [K, N] (a parameter)
S_SHAPE = (2, 3, 4)  # Softmax input: rank 3, so opset 11's coerce-to-2-D differs from axis -1


def _defaults_model(opset: int, leaky_alpha: float | None = None) -> onnx.ModelProto:
    """x[2,4] -Gemm(W[4,3], C[3])-> LeakyRelu -> y;  s[2,3,4] -Softmax-> z; no attributes set
    except LeakyRelu ``alpha`` when ``leaky_alpha`` is given."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=W_SHAPE).astype(np.float32), "fc.weight")
    bias = numpy_helper.from_array(rng.normal(size=(W_SHAPE[1],)).astype(np.float32), "fc.bias")
    leaky = {} if leaky_alpha is None else {"alpha": leaky_alpha}
    nodes = [
        helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["g"], name="fc"),
        helper.make_node("LeakyRelu", ["g"], ["y"], name="act", **leaky),
        helper.make_node("Softmax", ["s"], ["z"], name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "defaults",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X_SHAPE)),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, list(S_SHAPE))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        initializer=[weight, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _ir_attrs(program, op: str) -> dict:
    [inst] = [inst for inst in program.instructions if inst.op == op]
    return dict(inst.attrs)


def _feed() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"x": rng.normal(size=X_SHAPE).astype(np.float32) * 3,
            "s": rng.normal(size=S_SHAPE).astype(np.float32) * 2}


@pytest.mark.parametrize("opset, softmax_axes", [(11, (1, 2)), (13, (-1,))])
def test_omitted_attributes_get_the_documented_defaults(opset, softmax_axes):
    program = lower_model(_defaults_model(opset))
    assert _ir_attrs(program, "gemm") == {"alpha": 1.0, "beta": 1.0, "trans_a": 0, "trans_b": 0}
    assert _ir_attrs(program, "leaky_relu") == {"alpha": float(np.float32(0.01))}
    # Softmax default axis: 1 at opset 11 (coerced to 2-D: all axes from 1 on of the rank-3
    # input), -1 at opset 13 (the last axis only).
    assert _ir_attrs(program, "softmax") == {"axes": softmax_axes}


@pytest.mark.parametrize("opset", [11, 13])
def test_defaults_match_onnxruntime(opset):
    model = _defaults_model(opset)
    feed = _feed()
    got = executor.run(lower_model(model), feed).outputs
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want_y, want_z = session.run(["y", "z"], feed)
    np.testing.assert_allclose(got["y"], want_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["z"], want_z, rtol=1e-5, atol=1e-6)
    # The two opsets really differ on this input (so the default axis is what is tested).
    other = 13 if opset == 11 else 11
    other_z = executor.run(lower_model(_defaults_model(other)), feed).outputs["z"]
    assert not np.allclose(other_z, want_z, rtol=1e-3)


def test_explicit_attribute_overrides_the_default():
    program = lower_model(_defaults_model(13, leaky_alpha=0.2))
    assert _ir_attrs(program, "leaky_relu") == {"alpha": float(np.float32(0.2))}
    # writing the documented default explicitly gives the value an omitted attribute gets
    written = lower_model(_defaults_model(13, leaky_alpha=0.01))
    assert _ir_attrs(written, "leaky_relu") == {"alpha": float(np.float32(0.01))}
    x = _feed()["x"]
    g = x @ written.parameter_values["fc.weight"] + written.parameter_values["fc.bias"]
    y = executor.run(written, _feed()).outputs["y"]
    np.testing.assert_allclose(y, np.where(g > 0, g, np.float32(0.01) * g), rtol=1e-5, atol=1e-6)
    y2 = executor.run(lower_model(_defaults_model(13, leaky_alpha=0.2)), _feed()).outputs["y"]
    np.testing.assert_allclose(y2, np.where(g > 0, g, np.float32(0.2) * g), rtol=1e-5, atol=1e-6)


def test_schema_defaults_by_opset_and_domain():
    assert schema_defaults("Softmax", "", 11)["axis"] == 1
    assert schema_defaults("Softmax", "", 13)["axis"] == -1
    assert schema_defaults("Softmax", "ai.onnx", 13)["axis"] == -1
    assert schema_defaults("Gemm", "", 13) == {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0}
    assert "kernel_shape" not in schema_defaults("Conv", "", 13)  # no default: depends on W
    assert schema_defaults("Relu", "com.example", 1) == {}  # custom domain: no schema
    assert schema_defaults("Gelu", "", 17) == {"approximate": "none"}  # newer than the opset: earliest schema
    assert schema_defaults("Softmax", "", None) == {}  # domain not imported


@pytest.mark.parametrize("op_type, opset, message", [
    ("Concat", 13, "attribute axis is required"),  # required by the schema
])
def test_absent_attribute_without_default_is_one_line_frontend_error(op_type, opset, message):
    node = helper.make_node(op_type, ["a", "b"], ["c"], name="n")
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    with pytest.raises(FrontendError, match=message) as info:
        lower_model(model)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
