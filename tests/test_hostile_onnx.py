"""Hostile ONNX files: external data leaving the model's folder (initializers, Constant nodes,
tensors inside Loop bodies), unknown data types, attributes of the wrong type, wrong input and
output counts, graphs without outputs, negative dims, opsets outside the tested range, and
shape contradictions that only show with the real input shapes.

Each is refused by ``accelsim inspect`` / ``accelsim run`` with exactly one line naming the
tensor, node or field; the valid controls load and compute the expected values.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from hostile.helpers import assert_one_line_error, run

_RNG = np.random.default_rng(11)
W = _RNG.normal(size=(4, 3)).astype(np.float32)
B = _RNG.normal(size=(3,)).astype(np.float32)
SECRET = np.full((4, 3), 7.0, np.float32)  # the content of every file outside the model's folder


def gemm(nodes=None, inits=None, inputs=None, outputs=None, opset=20) -> onnx.ModelProto:
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="g")] if nodes is None else nodes
    inputs = [helper.make_tensor_value_info("x", TP.FLOAT, ["batch", 4])] if inputs is None else inputs
    outputs = [helper.make_tensor_value_info("y", TP.FLOAT, None)] if outputs is None else outputs
    inits = [numpy_helper.from_array(W, "w"), numpy_helper.from_array(B, "b")] if inits is None else inits
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    opsets = [] if opset is None else [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=9)


def external(name: str, location: str, offset: int | None = None, length: int | None = None) -> TP:
    tensor = TP(name=name, data_type=TP.FLOAT, dims=[4, 3], data_location=TP.EXTERNAL)
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            tensor.external_data.add(key=key, value=str(value))
    return tensor


def with_constant(tensor: TP) -> onnx.ModelProto:
    nodes = [helper.make_node("Constant", [], ["w"], name="c", value=tensor),
             helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="g")]
    return gemm(nodes=nodes, inits=[numpy_helper.from_array(B, "b")])


def loop_body(body_nodes, inits=()) -> onnx.ModelProto:
    body = helper.make_graph(
        body_nodes, "body",
        [helper.make_tensor_value_info("i", TP.INT64, []), helper.make_tensor_value_info("c", TP.BOOL, [])],
        [helper.make_tensor_value_info("c", TP.BOOL, []), helper.make_tensor_value_info("o", TP.FLOAT, None)],
        initializer=list(inits))
    return gemm(nodes=[helper.make_node("Loop", ["", ""], ["y"], name="loop", body=body)])


def retyped_init(data_type: int) -> onnx.ModelProto:
    tensor = numpy_helper.from_array(W, "w")
    tensor.data_type = data_type
    return gemm(inits=[tensor, numpy_helper.from_array(B, "b")])


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, name=op.lower(), **attrs)


def after_gemm(*nodes) -> onnx.ModelProto:
    return gemm(nodes=[helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="g"), *nodes])


def conv(**attrs) -> onnx.ModelProto:
    weight = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "cw")
    inits = [weight] + ([numpy_helper.from_array(np.ones(5, np.float32), "cb")] if "bias" in attrs else [])
    ins = ["x", "cw"] + (["cb"] if attrs.pop("bias", False) else [])
    return gemm(nodes=[helper.make_node("Conv", ins, ["y"], name="c", **attrs)], inits=inits,
                inputs=[helper.make_tensor_value_info("x", TP.FLOAT, ["batch", 1, 8, 8])])


def bad_attr_type() -> onnx.ModelProto:
    model = gemm()
    model.graph.node[0].attribute.add(name="alpha", type=onnx.AttributeProto.UNDEFINED)
    return model


def bad_utf8_name() -> bytes:
    data = gemm(nodes=[helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="gXXXX")]).SerializeToString()
    return data.replace(b"gXXXX", b"g\xff\xfe\xfd\xfc")


def negative_dim_init() -> onnx.ModelProto:
    tensor = numpy_helper.from_array(W, "w")
    tensor.dims[0] = -4
    return gemm(inits=[tensor, numpy_helper.from_array(B, "b")])


def wrong_size_init() -> onnx.ModelProto:
    tensor = numpy_helper.from_array(W, "w")
    tensor.dims[0] = 2**40
    return gemm(inits=[tensor, numpy_helper.from_array(B, "b")])


def negative_reshape() -> onnx.ModelProto:
    model = after_gemm(node("Reshape", ["h", "s"], ["y"]))
    model.graph.initializer.append(numpy_helper.from_array(np.array([-3, -3], np.int64), "s"))
    return model


def fixed_batch_reshape() -> onnx.ModelProto:
    shape = numpy_helper.from_array(np.array([5, 3], np.int64), "shape")
    return gemm(nodes=[helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="g"),
                       helper.make_node("Reshape", ["h", "shape"], ["y"], name="fixed_batch")],
                inits=[numpy_helper.from_array(W, "w"), numpy_helper.from_array(B, "b"), shape])


# (id, model builder, phrase); the model is saved as <tmp>/model/m.onnx, secret.bin lies one
# folder up, inside.bin inside the model's folder, link.bin / linkdir are symlinks leaving it
EXTERNAL = [
    ("init-absolute", lambda d: gemm(inits=[external("w", str(d.parent / "secret.bin")), numpy_helper.from_array(B, "b")]),
     "initializer 'w' points to external data"),
    ("init-dotdot", lambda d: gemm(inits=[external("w", "../secret.bin"), numpy_helper.from_array(B, "b")]),
     "'../secret.bin' outside the model's folder"),
    ("init-symlink", lambda d: gemm(inits=[external("w", "link.bin"), numpy_helper.from_array(B, "b")]),
     "'link.bin' outside the model's folder"),
    ("init-symlinked-dir", lambda d: gemm(inits=[external("w", "linkdir/secret.bin"), numpy_helper.from_array(B, "b")]),
     "'linkdir/secret.bin' outside the model's folder"),
    ("init-device", lambda d: gemm(inits=[external("w", "/dev/zero"), numpy_helper.from_array(B, "b")]),
     "'/dev/zero' outside the model's folder"),
    ("init-folder", lambda d: gemm(inits=[external("w", "sub"), numpy_helper.from_array(B, "b")]),
     "is missing or not a regular file"),
    ("init-no-location", lambda d: gemm(inits=[external("w", ""), numpy_helper.from_array(B, "b")]),
     "without a usable location"),
    ("init-offset-past-end", lambda d: gemm(inits=[external("w", "inside.bin", offset=4096), numpy_helper.from_array(B, "b")]),
     "could not be read"),
    ("init-too-short", lambda d: gemm(inits=[external("w", "inside.bin", length=8), numpy_helper.from_array(B, "b")]),
     "8 bytes of data for dims [4, 3]"),
    ("constant-absolute", lambda d: with_constant(external("cw", str(d.parent / "secret.bin"))),
     "node 'c' (Constant) attribute value points to external data"),
    ("constant-dotdot", lambda d: with_constant(external("cw", "../secret.bin")), "outside the model's folder"),
    ("constant-symlink", lambda d: with_constant(external("cw", "link.bin")), "'link.bin' outside the model's folder"),
    ("constant-cwd-relative", lambda d: with_constant(external("cw", "cwd_secret.bin")),
     "'cwd_secret.bin' is missing or not a regular file"),
    ("loop-body-initializer", lambda d: loop_body([node("Identity", ["bw"], ["o"])], [external("bw", "../secret.bin")]),
     "node 'loop' (Loop) body: initializer 'bw' points to external data '../secret.bin'"),
    ("loop-body-constant", lambda d: loop_body([helper.make_node("Constant", [], ["o"], name="k",
                                                                 value=external("kw", "../secret.bin"))]),
     "node 'loop' (Loop) body: node 'k' (Constant)"),
]
TYPES = [
    ("input-type-99", lambda d: gemm(inputs=[helper.make_tensor_value_info("x", 99, ["batch", 4])]),
     "graph input 'x': element type type 99 is not supported"),
    ("input-undefined", lambda d: gemm(inputs=[helper.make_tensor_value_info("x", TP.UNDEFINED, ["batch", 4])]),
     "element type UNDEFINED"),
    ("input-string", lambda d: gemm(inputs=[helper.make_tensor_value_info("x", TP.STRING, ["batch", 4])]),
     "element type STRING"),
    ("input-complex", lambda d: gemm(inputs=[helper.make_tensor_value_info("x", TP.COMPLEX64, ["batch", 4])]),
     "element type COMPLEX64"),
    ("init-type-99", lambda d: retyped_init(99), "initializer 'w': element type type 99"),
    ("init-undefined", lambda d: retyped_init(TP.UNDEFINED), "initializer 'w': element type UNDEFINED"),
    ("init-fp8", lambda d: retyped_init(TP.FLOAT8E4M3FN), "element type FLOAT8E4M3FN"),
    ("init-complex", lambda d: gemm(inits=[numpy_helper.from_array(W.astype(np.complex64), "w"),
                                           numpy_helper.from_array(B, "b")]), "element type COMPLEX64"),
    ("output-type-99", lambda d: gemm(outputs=[helper.make_tensor_value_info("y", 99, None)]), "graph output 'y'"),
    ("cast-to-99", lambda d: after_gemm(node("Cast", ["h"], ["y"], to=99)), "node 'cast' (Cast)"),
]
ATTRIBUTES = [
    ("int-as-float", lambda d: gemm(nodes=[node("Gemm", ["x", "w", "b"], ["y"], transB=1.5)]),
     "attribute 'transB' is FLOAT, Gemm expects INT"),
    ("float-as-string", lambda d: gemm(nodes=[node("Gemm", ["x", "w", "b"], ["y"], alpha="big")]),
     "attribute 'alpha' is STRING, Gemm expects FLOAT"),
    ("float-as-list", lambda d: gemm(nodes=[node("Gemm", ["x", "w", "b"], ["y"], alpha=[1.0, 2.0])]),
     "attribute 'alpha' is FLOATS"),
    ("ints-as-float", lambda d: conv(kernel_shape=3.0), "attribute 'kernel_shape' is FLOAT, Conv expects INTS"),
    ("untyped", lambda d: bad_attr_type(), "attribute 'alpha' has no type"),
    ("unknown-name", lambda d: gemm(nodes=[node("Gemm", ["x", "w", "b"], ["y"], bogus=3)]),
     "unknown attribute 'bogus' for Gemm at opset 20"),
    ("required-missing", lambda d: after_gemm(node("Concat", ["h", "h"], ["y"])), "attribute axis is required"),
    ("group-zero", lambda d: conv(group=0), "group=0 must be >= 1"),
    ("strides-zero", lambda d: conv(strides=[0, 0]), "strides must only contain positive values"),
    ("conv-bias-size", lambda d: conv(bias=True), "B has shape [5]"),
    ("axis-past-rank", lambda d: after_gemm(node("Concat", ["h", "h"], ["y"], axis=7)), "node 'concat' (Concat)"),
    ("perm-repeated", lambda d: after_gemm(node("Transpose", ["h"], ["y"], perm=[0, 0])), "repeated value"),
]
COUNTS = [
    ("too-few-inputs", lambda d: gemm(nodes=[node("Gemm", ["x"], ["y"])]), "1 inputs, Gemm takes 2 to 3"),
    ("extra-input", lambda d: gemm(nodes=[node("Gemm", ["x", "w", "b", "b"], ["y"])]), "4 inputs, Gemm takes 2 to 3"),
    ("relu-two-inputs", lambda d: after_gemm(node("Relu", ["h", "h"], ["y"])), "2 inputs, Relu takes 1"),
    ("add-one-input", lambda d: after_gemm(node("Add", ["h"], ["y"])), "1 inputs, Add takes 2"),
    ("extra-output", lambda d: gemm(nodes=[node("Relu", ["x"], ["y", "z"])]), "2 outputs, Relu has 1"),
    ("empty-required-input", lambda d: gemm(nodes=[node("Gemm", ["x", "", "b"], ["y"])]), "required input 1 (B) is empty"),
    ("empty-variadic-input", lambda d: after_gemm(node("Concat", ["h", ""], ["y"], axis=0)), "required input 1"),
    ("no-outputs", lambda d: gemm(outputs=[]), "graph 'g' has no outputs"),
    ("input-twice", lambda d: gemm(inputs=[helper.make_tensor_value_info("x", TP.FLOAT, ["batch", 4])] * 2),
     "graph input 'x' is listed twice"),
    ("undefined-tensor", lambda d: gemm(nodes=[node("Relu", ["nowhere"], ["y"])]), "reads tensor 'nowhere'"),
]
DIMS = [
    ("negative-input-dim", lambda d: gemm(inputs=[helper.make_tensor_value_info("x", TP.FLOAT, ["batch", -4])]),
     "graph input 'x': dim 1 is -4 (negative)"),
    ("negative-init-dim", lambda d: negative_dim_init(), "initializer 'w': negative dim in [-4, 3]"),
    ("dims-beyond-data", lambda d: wrong_size_init(), "48 bytes of data for dims [1099511627776, 3]"),
    ("negative-reshape", lambda d: negative_reshape(), "node 'reshape' (Reshape): Invalid dimension value: -3"),
    ("gemm-shape-mismatch", lambda d: gemm(inputs=[helper.make_tensor_value_info("x", TP.FLOAT, ["batch", 5])]),
     "node 'g' (Gemm): Dimension mismatch"),
    ("constant-index-past-end", lambda d: gemm(nodes=[node("Gather", ["w", "i"], ["ww"], axis=0),
                                                      node("Gemm", ["x", "ww", "b"], ["y"])],
                                               inits=[numpy_helper.from_array(W, "w"), numpy_helper.from_array(B, "b"),
                                                      numpy_helper.from_array(np.array([0, 1, 2, 9]), "i")]),
     "id 9 in 'i' is out of range for axis 0 of size 4"),
    ("not-utf8-name", lambda d: bad_utf8_name(), "is not UTF-8 text"),
]
OPSETS = [
    ("opset-6", lambda d: gemm(opset=6), "opset 6 is outside the opsets accelsim is tested on (7..28)"),
    ("opset-29", lambda d: gemm(opset=29), "opset 29 is outside"),
    ("opset-0", lambda d: gemm(opset=0), "opset 0 is outside"),
    ("opset-none", lambda d: gemm(opset=None), "imports no default-domain (ai.onnx) opset"),
]
CORPUS = [(c, *case) for c, cases in (("external", EXTERNAL), ("types", TYPES), ("attributes", ATTRIBUTES),
                                      ("counts", COUNTS), ("dims", DIMS), ("opsets", OPSETS)) for case in cases]


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    model_dir = tmp_path / "model"
    (model_dir / "sub").mkdir(parents=True)
    SECRET.tofile(tmp_path / "secret.bin")
    W.tofile(model_dir / "inside.bin")
    os.symlink(tmp_path / "secret.bin", model_dir / "link.bin")
    os.symlink(tmp_path, model_dir / "linkdir")
    return model_dir


def save(model, folder: Path) -> Path:
    path = folder / "m.onnx"
    path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
    return path


@pytest.mark.parametrize("category, case, build, phrase", CORPUS, ids=[f"{c[0]}:{c[1]}" for c in CORPUS])
def test_hostile_model_is_one_line(folder, capsys, monkeypatch, category, case, build, phrase):
    SECRET.tofile(folder.parent / "cwd_secret.bin")
    monkeypatch.chdir(folder.parent)  # a Constant's external data is never read relative to here
    model = build(folder)
    line = assert_one_line_error(capsys, ["inspect", save(model, folder)], phrase)
    assert "7.0" not in line


def flatten_all() -> onnx.ModelProto:
    """Flatten(axis=0) makes [1, 4·batch]: only a batch of 1 fits the Gemm's [4, 3] weight."""
    return gemm(nodes=[helper.make_node("Flatten", ["x"], ["flat"], name="flat", axis=0),
                       helper.make_node("Gemm", ["flat", "w", "b"], ["y"], name="g")])


@pytest.mark.parametrize("build, phrase, good_batch", [
    (fixed_batch_reshape, "instruction 'fixed_batch' (reshape): cannot reshape [4, 3] (12 elements) to [5, 3]", 5),
    (flatten_all, "inputs of shape x [4, 4]: node 'g' (Gemm): Dimension mismatch", 1),
])
def test_shapes_that_only_fail_with_the_real_batch(folder, capsys, build, phrase, good_batch):
    """Models that load with a symbolic batch and cannot take 4 samples: refused when they
    arrive, naming the node (ONNX shape inference with the real input shapes, or the
    executor's check of a Reshape); the batch they do take runs."""
    path = save(build(), folder)
    for batch in (4, good_batch):
        x = np.ones((batch, 4), np.float32)
        np.savez(folder / "x.npz", x=x)
        argv = ["run", path, "--inputs", folder / "x.npz", "--out", folder / "y.npz"]
        if batch == good_batch:
            assert run(capsys, argv)[0] == 0
            expected = x.reshape(-1, 4) @ W + B
            np.testing.assert_allclose(np.load(folder / "y.npz")["y"].reshape(expected.shape), expected, rtol=1e-6)
        else:
            assert_one_line_error(capsys, argv, phrase)


@pytest.mark.parametrize("opset", [7, 13, 28])
def test_controls_load_and_compute(folder, capsys, monkeypatch, opset):
    """External data inside the folder (initializer and Constant) is read; opsets at both ends
    of the range load; the result is x @ W + b with the file's W."""
    monkeypatch.chdir(folder.parent)
    models = {"init": gemm(inits=[external("w", "inside.bin"), numpy_helper.from_array(B, "b")], opset=opset),
              "constant": with_constant(external("cw", "inside.bin"))}
    x = np.random.default_rng(opset).normal(size=(3, 4)).astype(np.float32)
    np.savez(folder / "x.npz", x=x)
    for name, model in models.items():
        if name == "constant":
            model.opset_import[0].version = max(opset, 13)
        path = save(model, folder)
        status, text, err = run(capsys, ["run", path, "--inputs", folder / "x.npz", "--out", folder / "y.npz"])
        assert status == 0 and err == [], err
        np.testing.assert_allclose(np.load(folder / "y.npz")["y"], x @ W + B, rtol=1e-5)
