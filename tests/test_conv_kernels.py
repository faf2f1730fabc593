"""Conv / pooling kernels against readable references, and BatchNorm folding in the frontend."""
from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from accelsim import executor
from accelsim.kernels import conv as conv_kernels
from frontend import FrontendError, lower_model


@pytest.mark.parametrize(
    "shape, kernel, strides, dilations",
    [
        ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1)),
        ((1, 2, 9, 8), (3, 2), (2, 3), (1, 1)),
        ((1, 2, 9, 9), (2, 2), (1, 2), (2, 3)),
        ((2, 2, 11), (4,), (3,), (2,)),
        ((1, 1, 5, 6, 4), (2, 3, 2), (1, 2, 1), (2, 1, 1)),
    ],
)
def test_im2col_matches_loop_twin(shape, kernel, strides, dilations):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    fast = conv_kernels.im2col(x, kernel, strides, dilations)
    slow = conv_kernels.im2col_reference(x, kernel, strides, dilations)
    assert fast.shape == slow.shape
    np.testing.assert_array_equal(fast, slow)


def test_im2col_rejects_bad_arguments():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="kernel_shape"):
        conv_kernels.im2col(x, (3,), (1, 1), (1, 1))
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        conv_kernels.im2col(x, (3, 3), (1, 1), (2, 2))


def conv_reference(x, w, b, strides, pads, dilations, group):
    """Direct nested-loop convolution (float64) for 2-D inputs."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    y = np.zeros((n, o, oh, ow))
    per_group = o // group
    for bi, oc, i, j in itertools.product(range(n), range(o), range(oh), range(ow)):
        g = oc // per_group
        patch = xp[bi, g * cg:(g + 1) * cg,
                   i * strides[0]: i * strides[0] + dilations[0] * (kh - 1) + 1: dilations[0],
                   j * strides[1]: j * strides[1] + dilations[1] * (kw - 1) + 1: dilations[1]]
        y[bi, oc, i, j] = np.sum(patch * w[oc]) + (b[oc] if b is not None else 0.0)
    return y


@pytest.mark.parametrize(
    "group, strides, pads, dilations",
    [(1, (1, 1), (1, 1, 1, 1), (1, 1)), (2, (2, 1), (0, 1, 2, 0), (1, 2)), (4, (1, 1), (0, 0, 0, 0), (1, 1))],
)
def test_conv_forward_matches_direct_loops(group, strides, pads, dilations):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 7, 8)).astype(np.float32)
    w = rng.standard_normal((8, 4 // group, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    got = conv_kernels.conv_forward(x, w, b, strides, pads, dilations, group)
    ref = conv_reference(x, w, b, strides, pads, dilations, group)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_conv_forward_chunks_large_batches(monkeypatch):
    monkeypatch.setattr(conv_kernels, "_COLS_BUDGET_BYTES", 4096)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    got = conv_kernels.conv_forward(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_allclose(got, conv_reference(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1),
                               rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ BatchNorm folding
def _conv_bn_model(conv_bias: bool, extra_reader: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "conv.weight"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32) + 1, "bn.weight"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "bn.bias"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "bn.running_mean"),
        numpy_helper.from_array(rng.random(4).astype(np.float32) + 0.5, "bn.running_var"),
    ]
    conv_inputs = ["x", "conv.weight"]
    if conv_bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "conv.bias"))
        conv_inputs.append("conv.bias")
    nodes = [
        helper.make_node("Conv", conv_inputs, ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization",
                         ["c", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"],
                         ["y"], name="bn", epsilon=1e-3),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["c"], ["r"], name="relu"))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 5])], outputs,
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _reference(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, {"x": x})


@pytest.mark.parametrize("conv_bias", [False, True])
def test_batchnorm_folds_into_conv(conv_bias):
    model = _conv_bn_model(conv_bias)
    program = lower_model(model)
    assert program.op_histogram() == {"conv": 1}
    assert set(program.parameters) == {"conv.weight", "conv.bias"}
    assert all("BatchNorm bn.weight+bn.bias" in p.source for p in program.parameters.values())
    assert program.parameters["conv.bias"].role == "bias"
    assert program.parameters["conv.bias"].component == "conv"
    x = np.random.default_rng(4).standard_normal((3, 2, 5, 5)).astype(np.float32)
    got = executor.run(program, {"x": x}).outputs["y"]
    np.testing.assert_allclose(got, _reference(model, x)[0], rtol=1e-5, atol=1e-5)


def test_batchnorm_with_other_reader_of_conv_output_stays_unfolded():
    model = _conv_bn_model(conv_bias=True, extra_reader=True)
    program = lower_model(model)
    assert program.op_histogram() == {"batch_norm": 1, "conv": 1, "relu": 1}
    roles = {p.name: p.role for p in program.parameters.values()}
    assert roles["bn.weight"] == "norm_scale" and roles["bn.bias"] == "norm_bias"
    x = np.random.default_rng(5).standard_normal((2, 2, 5, 5)).astype(np.float32)
    outputs = executor.run(program, {"x": x}).outputs
    for got, ref in zip((outputs["y"], outputs["r"]), _reference(model, x)):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_training_mode_batchnorm_is_a_one_line_error():
    model = _conv_bn_model(conv_bias=False)
    model.graph.node[1].attribute.append(helper.make_attribute("training_mode", 1))
    model.graph.node[1].output.extend(["running_mean_out", "running_var_out"])  # valid ONNX in training mode
    model.opset_import[0].version = 15
    with pytest.raises(FrontendError, match=r"node 'bn' \(BatchNormalization\): training_mode=1"):
        lower_model(model)


def test_auto_pad_same_needs_static_spatial_shape():
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv_3", auto_pad="SAME_UPPER")
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(FrontendError, match=r"node 'conv_3' \(Conv\): auto_pad=SAME_UPPER needs a static"):
        lower_model(model)
