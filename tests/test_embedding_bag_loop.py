"""``nn.EmbeddingBag`` exported by both torch exporters (one Loop per table) lowers to one IR
``embedding_bag`` per table and agrees with onnxruntime and torch; Loops that are not an
EmbeddingBag fail with one line naming the Loop.

Modes sum/mean/max, include_last_offset and per_sample_weights, empty bags included. (torch's
legacy exporter cannot export padding_idx; the dynamo export of it is a nested Loop and is
rejected.)
"""
from __future__ import annotations

import io
import contextlib
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import frontend
from accelsim import executor

import torch
nn = torch.nn

ROWS = (13, 9, 17)


class Bags(nn.Module):
    """Three tables (sum, mean, max), or (include_last_offset sum, weighted sum, sum)."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        self.variant = variant
        if variant == "modes":
            kinds = [dict(mode="sum"), dict(mode="mean"), dict(mode="max")]
        else:
            kinds = [dict(mode="sum", include_last_offset=True), dict(mode="sum"), dict(mode="sum")]
        self.emb = nn.ModuleList(nn.EmbeddingBag(r, 4, **k) for r, k in zip(ROWS, kinds))

    def forward(self, i0, o0, i1, o1, i2, o2, w1):
        weights = w1 if self.variant == "extras" else None
        return torch.cat([self.emb[0](i0, o0), self.emb[1](i1, o1, per_sample_weights=weights),
                          self.emb[2](i2, o2)], dim=1)


NAMES = ["i0", "o0", "i1", "o1", "i2", "o2", "w1"]


def feeds(variant: str, seed: int, n_bags: int = 5, empty: bool = True) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    out = {}
    for k, rows in enumerate(ROWS):
        lengths = g.integers(0 if empty else 1, 5, n_bags)
        lengths[0] = max(lengths[0], 1)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        out[f"i{k}"] = g.integers(0, rows, int(offsets[-1])).astype(np.int64)
        out[f"o{k}"] = offsets if (variant == "extras" and k == 0) else offsets[:-1]
    out["w1"] = g.random(len(out["i1"])).astype(np.float32)
    return out


def static_feeds(example: dict, seed: int) -> dict[str, np.ndarray]:
    """Same shapes as ``example`` (for static exports), other ids and bag boundaries."""
    g = np.random.default_rng(seed)
    out = dict(example)
    for k, rows in enumerate(ROWS):
        n_idx, n_off = len(example[f"i{k}"]), len(example[f"o{k}"])
        out[f"i{k}"] = g.integers(0, rows, n_idx).astype(np.int64)
        cuts = np.sort(g.integers(0, n_idx + 1, n_off - 1))
        out[f"o{k}"] = np.concatenate([[0], cuts]).astype(np.int64)
    out["w1"] = g.random(len(out["i1"])).astype(np.float32)
    return out


def export(model: nn.Module, path: Path, dynamo: bool, example: dict, static: bool = False) -> Path:
    args = tuple(torch.from_numpy(example[n]) for n in NAMES)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if static:
            torch.onnx.export(model, args, str(path), dynamo=dynamo, input_names=NAMES,
                              **({"external_data": False} if dynamo else {}))
        elif dynamo:
            dims = tuple({0: torch.export.Dim(f"d{k}")} for k in range(len(NAMES)))
            torch.onnx.export(model, args, str(path), dynamo=True, external_data=False, input_names=NAMES,
                              dynamic_shapes=dims)
        else:
            torch.onnx.export(model, args, str(path), dynamo=False, input_names=NAMES,
                              dynamic_axes={n: {0: f"d{k}"} for k, n in enumerate(NAMES)})
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[tuple[str, str], tuple[Path, nn.Module]]:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("bags")
    out = {}
    for variant in ("modes", "extras"):
        model = Bags(variant).eval()
        for exporter in ("legacy", "dynamo"):
            path = export(model, folder / f"{variant}_{exporter}.onnx", exporter == "dynamo", feeds(variant, 0))
            out[variant, exporter] = (path, model)
    model = Bags("modes").eval()  # static shapes: the exporters fold the trip count, lengths, ones
    for exporter in ("legacy", "dynamo"):
        path = export(model, folder / f"static_{exporter}.onnx", exporter == "dynamo", feeds("modes", 0), True)
        out["static", exporter] = (path, model)
    return out


def used_inputs(path: Path, feed: dict) -> dict:
    names = {i.name for i in onnx.load(str(path)).graph.input}
    return {k: v for k, v in feed.items() if k in names}


@pytest.mark.parametrize("variant", ["modes", "extras"])
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_embedding_bag_loop_matches_ort_and_torch(exports, variant: str, exporter: str) -> None:
    path, model = exports[variant, exporter]
    program = frontend.load_onnx(path)
    bags = [inst for inst in program.instructions if inst.op == "embedding_bag"]
    assert len(bags) == 3
    tables = {name for name, p in program.parameters.items() if p.role == "embedding"}
    assert tables == {"emb.0.weight", "emb.1.weight", "emb.2.weight"}
    assert {program.parameters[t].component for t in tables} == {"embedding.table0", "embedding.table1",
                                                                 "embedding.table2"}
    readers = {inst.op for inst in program.instructions if set(inst.inputs) & tables}
    assert readers == {"embedding_bag"}, "a table is read by something else than its embedding bag"
    assert all("Loop" not in inst.name or inst.op == "embedding_bag" for inst in program.instructions)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed, empty in ((1, False), (2, True), (3, True)):
        feed = used_inputs(path, feeds(variant, seed, empty=empty))
        ours = executor.run(program, feed).outputs[program.output_names[0]]
        ref = session.run(None, feed)[0]
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)
        if not empty:  # torch and ONNX differ only on empty bags (legacy max gives -inf there)
            with torch.no_grad():
                expected = model(*[torch.from_numpy(feeds(variant, seed, empty=empty)[n]) for n in NAMES]).numpy()
            np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_static_shape_exports_match_ort(exports, exporter: str) -> None:
    path, _ = exports["static", exporter]
    program = frontend.load_onnx(path)
    assert program.op_histogram().get("embedding_bag") == 3
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed in (4, 5):
        feed = used_inputs(path, static_feeds(feeds("modes", 0), seed))
        np.testing.assert_allclose(executor.run(program, feed).outputs[program.output_names[0]],
                                   session.run(None, feed)[0], rtol=1e-6, atol=1e-6)


def lower_error(model: onnx.ModelProto) -> str:
    with pytest.raises(frontend.FrontendError) as info:
        frontend.lower_model(model)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_reduction_over_the_wrong_axis_is_rejected(exports) -> None:
    model = onnx.load(str(exports["modes", "legacy"][0]))
    body_loop = [n for n in model.graph.node if n.op_type == "Loop"][0]
    body = next(a.g for a in body_loop.attribute if a.name == "body")
    reduce = next(n for n in body.node if n.op_type == "ReduceSum")
    axes = next(n for n in body.node if n.op_type == "Constant" and n.output[0] == reduce.input[1])
    axes.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array([1], np.int64)))
    message = lower_error(model)
    assert f"Loop {body_loop.name!r} is not an EmbeddingBag pattern" in message
    assert "general Loop is not supported" in message


def test_wrong_trip_count_is_rejected(exports) -> None:
    model = onnx.load(str(exports["modes", "legacy"][0]))
    loop = [n for n in model.graph.node if n.op_type == "Loop"][1]
    model.graph.node.insert(0, helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2))))
    loop.input[0] = "two"
    assert "trip count is not the number of bags" in lower_error(model)


def test_shifted_bag_bounds_are_rejected(exports) -> None:
    """Dynamo form with the bag end read from offsets[i + 2] instead of offsets[i + 1]."""
    model = onnx.load(str(exports["modes", "dynamo"][0]))
    loop = [n for n in model.graph.node if n.op_type == "Loop"][0]
    body = next(a.g for a in loop.attribute if a.name == "body")
    position, end = next((k, n) for k, n in enumerate(body.node)
                         if n.op_type == "Slice" and n.output[0].startswith("end"))
    one = helper.make_node("Constant", [], ["one_"], value=numpy_helper.from_array(np.array([1])))
    shift = helper.make_node("Add", [end.input[2], "one_"], ["shifted_"])
    end.input[1], end.input[2] = end.input[2], "shifted_"
    body.node.insert(position, shift)
    body.node.insert(position, one)
    assert "is not an EmbeddingBag pattern" in lower_error(model)


def test_general_loop_is_rejected() -> None:
    """A Loop that accumulates a loop-carried tensor (ONNX's loop11 kind of graph)."""
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "one"], ["acc_out"]), helper.make_node("Identity", ["cond"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", onnx.TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", onnx.TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("cond_out", onnx.TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", onnx.TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.ones(2, np.float32), "one")],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "x"], ["y"], body=body, name="my_loop")], "g",
        [helper.make_tensor_value_info("n", onnx.TensorProto.INT64, []),
         helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    message = lower_error(model)
    assert message.startswith("Loop 'my_loop' is not an EmbeddingBag pattern (")
    assert message.endswith("general Loop is not supported")


def test_padding_idx_dynamo_export_is_rejected(tmp_path: Path) -> None:
    class Padded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.e = nn.EmbeddingBag(10, 4, mode="sum", padding_idx=2)

        def forward(self, i, o):
            return self.e(i, o)

    torch.manual_seed(0)  # the table's initial weights
    args = (torch.tensor([1, 2, 3, 4]), torch.tensor([0, 2]))
    path = tmp_path / "pad.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(Padded().eval(), args, str(path), dynamo=True, external_data=False,
                          input_names=["i", "o"], dynamic_shapes=({0: torch.export.Dim("L")}, {0: torch.export.Dim("B")}))
    message = lower_error(onnx.load(str(path)))
    assert "is not an EmbeddingBag pattern" in message and "Loop" in message


def test_concat_from_a_general_sequence_is_rejected() -> None:
    graph = helper.make_graph(
        [helper.make_node("SequenceEmpty", [], ["s"], dtype=onnx.TensorProto.FLOAT),
         helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0, name="cat")], "g",
        [], [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    assert "not a sequence built by an EmbeddingBag Loop" in lower_error(model)
