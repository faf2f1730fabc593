"""Layout, gather/scatter and embedding-bag ops: small hand-built ONNX graphs lowered by the
frontend and run by the executor, compared with onnxruntime on the same graph; views share
memory with their input; parameter tables are claimed as embeddings; the Numba embedding bag
agrees with its readable twin and with torch.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import frontend
from accelsim import executor
from accelsim.ir import Instruction
from accelsim.kernels import KERNELS
from accelsim.kernels.embedding import embedding_bag_reference, embedding_bag_values

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
BIG = np.iinfo(np.int64).max
RNG = np.random.default_rng(0)  # the module-level cases below, drawn at import in a fixed order


def _x(*shape: int, rng: np.random.Generator = RNG) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _i(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def build(nodes, inputs: dict, outputs: dict, inits: dict | None = None, opset: int = 20) -> onnx.ModelProto:
    """Graph from nodes; ``inputs``/``inits`` name -> array; ``outputs`` name -> ONNX elem type."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs.items()],
        [numpy_helper.from_array(a, n) for n, a in (inits or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def run_both(model: onnx.ModelProto, feeds: dict) -> tuple[list[np.ndarray], list[np.ndarray], object]:
    program = frontend.lower_model(model)
    ours = executor.run(program, feeds).outputs
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    refs = sess.run(None, feeds)
    got = [ours[o.name] for o in model.graph.output]
    for g, r, o in zip(got, refs, model.graph.output):
        assert g.shape == r.shape and g.dtype == r.dtype, f"{o.name}: {g.dtype}{g.shape} vs {r.dtype}{r.shape}"
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-7, err_msg=o.name)
    return got, refs, program


N = helper.make_node
X234 = _x(2, 3, 4)

CASES = {
    "reshape_zero_minus_one": ([N("Reshape", ["x", "s"], ["y"])], {"x": X234}, {"s": _i([0, -1])}, 20),
    "reshape_runtime_shape": ([N("Reshape", ["x", "s"], ["y"])], {"x": X234, "s": _i([4, 0, -1])}, {}, 20),
    "reshape_allowzero": ([N("Reshape", ["x", "s"], ["y"], allowzero=1)], {"x": _x(0, 3)}, {"s": _i([3, 0])}, 20),
    "transpose_default": ([N("Transpose", ["x"], ["y"])], {"x": X234}, {}, 20),
    "transpose_perm": ([N("Transpose", ["x"], ["y"], perm=[1, 2, 0])], {"x": X234}, {}, 20),
    "concat_negative_axis": ([N("Concat", ["x", "x2", "x"], ["y"], axis=-1)], {"x": X234, "x2": _x(2, 3, 1)}, {}, 20),
    "slice_negative_clamped": ([N("Slice", ["x", "st", "en", "ax"], ["y"])], {"x": X234},
                               {"st": _i([-3, -100]), "en": _i([BIG, -1]), "ax": _i([2, 0])}, 20),
    "slice_negative_steps": ([N("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], {"x": X234},
                             {"st": _i([-1, 10]), "en": _i([-BIG, 0]), "ax": _i([2, -2]), "sp": _i([-2, -1])}, 20),
    "slice_runtime_starts": ([N("Slice", ["x", "st", "en"], ["y"])], {"x": X234, "st": _i([1, 1])},
                             {"en": _i([2, 3])}, 20),
    "slice_opset9_attrs": ([N("Slice", ["x"], ["y"], starts=[1], ends=[100], axes=[2])], {"x": X234}, {}, 9),
    "unsqueeze_attr_opset11": ([N("Unsqueeze", ["x"], ["y"], axes=[0, -1])], {"x": X234}, {}, 11),
    "unsqueeze_input": ([N("Unsqueeze", ["x", "a"], ["y"])], {"x": X234}, {"a": _i([1, 3])}, 20),
    "squeeze_all": ([N("Squeeze", ["x"], ["y"])], {"x": _x(1, 3, 1, 2)}, {}, 20),
    "squeeze_runtime_axes": ([N("Squeeze", ["x", "a"], ["y"])], {"x": _x(1, 3, 1, 2), "a": _i([-2])}, {}, 20),
    "flatten_negative": ([N("Flatten", ["x"], ["y"], axis=-2)], {"x": X234}, {}, 20),
    "flatten_zero": ([N("Flatten", ["x"], ["y"], axis=0)], {"x": X234}, {}, 20),
    "expand_bidirectional": ([N("Expand", ["x", "s"], ["y"])], {"x": _x(3, 1)}, {"s": _i([2, 1, 4])}, 20),
    "split_uneven_num_outputs": ([N("Split", ["x"], ["y", "y1", "y2"], axis=1, num_outputs=3)],
                                 {"x": _x(2, 7)}, {}, 18),
    "split_sizes_input": ([N("Split", ["x", "sp"], ["y", "y1"], axis=-1)], {"x": _x(2, 7)}, {"sp": _i([2, 5])}, 13),
    "split_sizes_attr": ([N("Split", ["x"], ["y", "y1"], axis=0, split=[1, 1])], {"x": _x(2, 7)}, {}, 11),
    "shape_start_end": ([N("Shape", ["x"], ["y"], start=1, end=-1)], {"x": X234}, {}, 20),
    "size": ([N("Size", ["x"], ["y"])], {"x": X234}, {}, 20),
    "range_int_runtime": ([N("Range", ["a", "b", "c"], ["y"])],
                          {"a": _i(10), "b": _i(-3), "c": _i(-4)}, {}, 20),
    "range_float": ([N("Range", ["a", "b", "c"], ["y"])], {"a": np.array(0.5, np.float32), "b": np.array(3.0, np.float32),
                                                             "c": np.array(0.75, np.float32)}, {}, 20),
    "constant_of_shape_int": ([N("ConstantOfShape", ["s"], ["y"],
                                 value=helper.make_tensor("v", TensorProto.INT32, [1], [7]))], {"s": _i([2, 3])}, {}, 20),
    "constant_of_shape_default": ([N("ConstantOfShape", ["s"], ["y"])], {"s": _i([4])}, {}, 20),
    "tile": ([N("Tile", ["x", "r"], ["y"])], {"x": X234}, {"r": _i([1, 2, 3])}, 20),
    "pad_constant_value": ([N("Pad", ["x", "p", "v"], ["y"])], {"x": X234},
                           {"p": _i([0, 1, 2, 1, 0, -1]), "v": np.array(1.5, np.float32)}, 20),
    "pad_reflect_axes": ([N("Pad", ["x", "p", "", "a"], ["y"], mode="reflect")], {"x": X234},
                         {"p": _i([2, 1, 1, 2]), "a": _i([-1, 1])}, 20),
    "pad_edge": ([N("Pad", ["x", "p"], ["y"], mode="edge")], {"x": X234}, {"p": _i([1, 0, 2, 0, 3, 1])}, 20),
    "pad_wrap": ([N("Pad", ["x", "p"], ["y"], mode="wrap")], {"x": X234}, {"p": _i([0, 2, 1, 0, 1, 3])}, 20),
    "pad_opset2_attrs": ([N("Pad", ["x"], ["y"], pads=[0, 1, 0, 0, 2, 0], value=2.0)], {"x": X234}, {}, 2),
    "dropout_inference_mask": ([N("Dropout", ["x", "r"], ["y", "m"])], {"x": X234, "r": np.array(0.3, np.float32)},
                               {}, 13),
    "trilu_lower_k": ([N("Trilu", ["x", "k"], ["y"], upper=0)], {"x": _x(2, 4, 5)}, {"k": _i(1)}, 20),
    "identity": ([N("Identity", ["x"], ["y"])], {"x": X234}, {}, 20),
    "gather_negative_axis1": ([N("Gather", ["x", "i"], ["y"], axis=1)], {"x": X234, "i": _i([[-1, 0], [2, 1]])}, {}, 20),
    "gather_scalar_index": ([N("Gather", ["x", "i"], ["y"], axis=-1)], {"x": X234, "i": _i(3)}, {}, 20),
    "gather_elements": ([N("GatherElements", ["x", "i"], ["y"], axis=1)],
                        {"x": X234, "i": _i(RNG.integers(-3, 3, (2, 5, 4)))}, {}, 20),
    "gather_nd_batch": ([N("GatherND", ["x", "i"], ["y"], batch_dims=1)],
                        {"x": X234, "i": _i([[[1], [2]], [[0], [-1]]])}, {}, 20),
    "gather_nd_full": ([N("GatherND", ["x", "i"], ["y"])], {"x": X234, "i": _i([[1, 2, 3], [0, 0, 1]])}, {}, 20),
    "scatter_nd_add_duplicates": ([N("ScatterND", ["x", "i", "u"], ["y"], reduction="add")],
                                  {"x": X234, "i": _i([[1, 0], [1, 0], [0, 2]]), "u": _x(3, 4)}, {}, 18),
    "scatter_nd_mul": ([N("ScatterND", ["x", "i", "u"], ["y"], reduction="mul")],
                       {"x": X234, "i": _i([[1], [0]]), "u": _x(2, 3, 4)}, {}, 18),
    "scatter_nd_none": ([N("ScatterND", ["x", "i", "u"], ["y"])], {"x": X234, "i": _i([[0, 1, 2]]), "u": _x(1)}, {}, 18),
    "scatter_elements_add": ([N("ScatterElements", ["x", "i", "u"], ["y"], axis=1, reduction="add")],
                             {"x": X234, "i": _i([[[0, 1, 0, 2]], [[2, 2, -1, 0]]]), "u": _x(2, 1, 4)}, {}, 18),
    "scatter_elements_max": ([N("ScatterElements", ["x", "i", "u"], ["y"], axis=-1, reduction="max")],
                             {"x": X234, "i": _i(RNG.integers(0, 4, (2, 3, 2))), "u": _x(2, 3, 2)}, {}, 18),
}
_OUT_TYPES = {"shape_start_end": {"y": I64}, "size": {"y": I64}, "range_int_runtime": {"y": I64},
              "constant_of_shape_int": {"y": TensorProto.INT32}, "dropout_inference_mask": {"y": F, "m": B}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case: str) -> None:
    nodes, inputs, inits, opset = CASES[case]
    outs = [o for n in nodes for o in n.output if o]
    types = _OUT_TYPES.get(case, {})
    model = build(nodes, inputs, {o: types.get(o, F) for o in outs}, inits, opset)
    run_both(model, inputs)


def test_constant_shape_arithmetic_folds() -> None:
    """Shape of a parameter and arithmetic on constants fold: only the real work is left."""
    rng = np.random.default_rng(1)
    w, x = _x(5, 4, rng=rng), _x(20, rng=rng)
    nodes = [N("Shape", ["w"], ["s"]), N("Gather", ["s", "zero"], ["rows"]), N("Unsqueeze", ["rows", "ax"], ["r1"]),
             N("Concat", ["r1", "minus"], ["target"], axis=0), N("Reshape", ["x", "target"], ["y"]),
             N("Constant", [], ["c"], value_ints=[2, 10]), N("Reshape", ["y", "c"], ["z"])]
    inits = {"w": w, "zero": _i(0), "ax": _i([0]), "minus": _i([-1])}
    model = build(nodes, {"x": x}, {"z": F}, inits)
    (z,), _, program = run_both(model, {"x": x})
    np.testing.assert_array_equal(z, x.reshape(2, 10))  # [20] -> [5, -1] -> [2, 10]: the values in order
    assert [inst.op for inst in program.instructions] == ["reshape", "reshape"]
    assert not program.parameters  # the weight is only read for its shape


def test_parameter_gather_is_an_embedding() -> None:
    table = _x(11, 4, rng=np.random.default_rng(2))
    nodes = [N("Gather", ["emb.3.weight", "ids"], ["rows"], axis=0), N("ReduceSum", ["rows", "ax"], ["y"], keepdims=0)]
    model = build(nodes, {"ids": _i([[1, 2, 10], [0, -1, 3]])}, {"y": F}, {"emb.3.weight": table, "ax": _i([1])})
    (y,), _, program = run_both(model, {"ids": _i([[1, 2, 10], [0, -1, 3]])})
    np.testing.assert_allclose(y, [table[[1, 2, 10]].sum(0), table[[0, 10, 3]].sum(0)], rtol=1e-6)  # -1: last row
    (param,) = program.parameters.values()
    assert (param.role, param.channel_axis, param.component) == ("embedding", 0, "embedding.table3")


def _inst(op: str, **attrs) -> Instruction:
    return Instruction(op, op, (), ("y",), attrs)


def test_layout_results_are_views() -> None:
    x = _x(2, 3, 4, rng=np.random.default_rng(3))
    views = {
        "identity": KERNELS["identity"](_inst("identity"), [x])[0],
        "reshape": KERNELS["reshape"](_inst("reshape", allowzero=0), [x, _i([6, -1])])[0],
        "transpose": KERNELS["transpose"](_inst("transpose", perm=(2, 0, 1)), [x])[0],
        "slice": KERNELS["slice"](_inst("slice"), [x, _i([1]), _i([3]), _i([2]), _i([1])])[0],
        "squeeze": KERNELS["squeeze"](_inst("squeeze", axes=None), [x[:1]])[0],
        "unsqueeze": KERNELS["unsqueeze"](_inst("unsqueeze", axes=(0,)), [x])[0],
        "flatten": KERNELS["flatten"](_inst("flatten", axis=1), [x])[0],
        "expand": KERNELS["expand"](_inst("expand"), [x, _i([5, 2, 3, 4])])[0],
        "split": KERNELS["split"](_inst("split", axis=2, split=None, num_outputs=2), [x])[1],
    }
    for op, view in views.items():
        assert np.shares_memory(view, x), f"{op} copied its input"


# ----------------------------------------------------------------------------- embedding bag
def _bags(rows: int, n_bags: int, seed: int, empty: bool = True):
    g = np.random.default_rng(seed)
    lengths = g.integers(0 if empty else 1, 6, n_bags)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return g.integers(0, rows, int(lengths.sum())).astype(np.int64), offsets


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_embedding_bag_fast_vs_twin_vs_torch(mode: str, seed: int) -> None:
    import torch
    table = np.random.default_rng(seed).standard_normal((37, 6)).astype(np.float32)
    idx, off = _bags(37, 9, seed)
    fast = embedding_bag_values(table, idx, off, mode=mode)
    slow = embedding_bag_reference(table, idx, off, mode=mode)
    ref = torch.nn.functional.embedding_bag(torch.from_numpy(idx), torch.from_numpy(table),
                                            torch.from_numpy(off), mode=mode).numpy()
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_allclose(fast, ref, rtol=1e-6, atol=1e-6)
    last = np.append(off, len(idx))  # include_last_offset form of the same bags
    np.testing.assert_array_equal(embedding_bag_values(table, idx, last, mode=mode, include_last_offset=True), fast)


def test_embedding_bag_weights_negative_indices_and_empties() -> None:
    import torch
    rng = np.random.default_rng(4)
    table = _x(20, 3, rng=rng)
    idx, off = _bags(20, 7, 5)
    w = _x(len(idx), rng=rng)
    ref = torch.nn.functional.embedding_bag(torch.from_numpy(idx), torch.from_numpy(table), torch.from_numpy(off),
                                            mode="sum", per_sample_weights=torch.from_numpy(w)).numpy()
    np.testing.assert_allclose(embedding_bag_values(table, idx, off, w), ref, rtol=1e-6, atol=1e-6)
    # negative ids count from the end (ONNX Gather): idx - 20 names the same rows as idx
    np.testing.assert_allclose(embedding_bag_values(table, idx - 20, off, w), ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(embedding_bag_values(table, idx - 20, off, w), embedding_bag_reference(table, idx, off, w))
    out = embedding_bag_values(table, _i([1, 2]), _i([0, 0, 2, 2]), mode="max", empty_value=-np.inf)
    assert np.all(out[[0, 2, 3]] == -np.inf) and np.array_equal(out[1], np.max(table[[1, 2]], axis=0))
    nan_table = table.copy()
    nan_table[2, 1] = np.nan
    for fn in (embedding_bag_values, embedding_bag_reference):
        assert np.isnan(fn(nan_table, _i([2, 1, 3]), _i([0]), mode="max")[0, 1])


@pytest.mark.parametrize("bad, message", [
    (dict(indices=_i([0, 20])), "index 20 out of range"),
    (dict(offsets=_i([0, -1])), "non-decreasing"),
    (dict(offsets=_i([1, 0])), "non-decreasing"),
    (dict(offsets=_i([0, 3])), "within \\[0, 2\\]"),
    (dict(table=np.zeros((20, 3), np.float64)), "float32"),
    (dict(indices=_i([[0, 1]])), "1-D integer"),
    (dict(weights=np.ones(3, np.float32)), "per_sample_weights shape"),
])
def test_embedding_bag_rejects_bad_input(bad: dict, message: str) -> None:
    args = dict(table=_x(20, 3, rng=np.random.default_rng(6)), indices=_i([0, 1]), offsets=_i([0, 1]), weights=None)
    args.update(bad)
    for fn in (embedding_bag_values, embedding_bag_reference):
        with pytest.raises(ValueError, match=message):
            fn(args["table"], args["indices"], args["offsets"], args["weights"])
