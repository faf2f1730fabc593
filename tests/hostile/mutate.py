"""Seeded protobuf mutations of an ONNX model: small fields only (attribute values and types,
node inputs/outputs and op types, tensor dims/types/values, graph inputs/outputs, opset), plus
raw byte flips and truncations of the serialized file.

``mutant(model_bytes, seed)`` returns ``(description, bytes)``: the same seed always gives
the same mutant. Used by ``tests/test_hostile_fuzz.py``.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto

INTS = (-(2**31), -7, -1, 0, 1, 2, 3, 5, 64, 2**31 - 1, 2**40)
FLOATS = (float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 1e-30, 1e30)
OP_TYPES = ("Relu", "Gemm", "Conv", "MaxPool", "Flatten", "Reshape", "Concat", "Gather", "MatMul",
            "Sigmoid", "Transpose", "Add", "Softmax", "Identity", "AveragePool", "Unsqueeze", "Bogus")
ELEM_TYPES = (0, 1, 2, 6, 7, 8, 9, 10, 11, 13, 14, 16, 17, 99)


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return list(model.graph.node)


def _tensor_names(model: onnx.ModelProto) -> list[str]:
    graph = model.graph
    names = [v.name for v in graph.input] + [t.name for t in graph.initializer]
    names += [o for n in graph.node for o in n.output]
    return names


def _small_tensors(model: onnx.ModelProto) -> list[TensorProto]:
    """Initializers and Constant values of at most 64 elements (shapes, axes, scalars)."""
    out = [t for t in model.graph.initializer if int(np.prod(t.dims)) <= 64]
    for node in model.graph.node:
        for a in node.attribute:
            if a.type == AttributeProto.TENSOR and int(np.prod(a.t.dims)) <= 64:
                out.append(a.t)
    return out


def m_attr_int(model, rng):
    cands = [(n, a) for n in _nodes(model) for a in n.attribute if a.type in (AttributeProto.INT, AttributeProto.INTS)]
    if not cands:
        return None
    node, a = _pick(rng, cands)
    value = _pick(rng, INTS)
    if a.type == AttributeProto.INT:
        a.i = value
    elif len(a.ints):
        a.ints[int(rng.integers(len(a.ints)))] = value
    else:
        a.ints.append(value)
    return f"attr {node.name}.{a.name} int -> {value}"


def m_attr_float(model, rng):
    cands = [(n, a) for n in _nodes(model) for a in n.attribute if a.type == AttributeProto.FLOAT]
    if not cands:
        return None
    node, a = _pick(rng, cands)
    a.f = _pick(rng, FLOATS)
    return f"attr {node.name}.{a.name} float -> {a.f}"


def m_attr_type(model, rng):
    cands = [(n, a) for n in _nodes(model) for a in n.attribute]
    if not cands:
        return None
    node, a = _pick(rng, cands)
    a.type = int(_pick(rng, (0, 1, 2, 3, 4, 6, 7, 8, 14)))
    return f"attr {node.name}.{a.name} type -> {a.type}"


def m_attr_add(model, rng):
    node = _pick(rng, _nodes(model))
    name = _pick(rng, ("axis", "transA", "group", "kernel_shape", "bogus", "alpha", "perm"))
    node.attribute.append(onnx.helper.make_attribute(name, _pick(rng, (1, -1, 2.5, [1, 1], "x"))))
    return f"attr {node.name}.{name} added"


def m_attr_drop(model, rng):
    cands = [n for n in _nodes(model) if n.attribute]
    if not cands:
        return None
    node = _pick(rng, cands)
    a = node.attribute[int(rng.integers(len(node.attribute)))]
    node.attribute.remove(a)
    return f"attr {node.name}.{a.name} dropped"


def m_input(model, rng):
    node = _pick(rng, _nodes(model))
    if not node.input:
        return None
    i = int(rng.integers(len(node.input)))
    choice = int(rng.integers(4))
    if choice == 0:
        node.input[i] = _pick(rng, _tensor_names(model))
    elif choice == 1:
        node.input[i] = ""
    elif choice == 2:
        node.input.append(_pick(rng, _tensor_names(model)))
    else:
        del node.input[i]
    return f"node {node.name} inputs -> {list(node.input)}"


def m_output(model, rng):
    node = _pick(rng, _nodes(model))
    choice = int(rng.integers(3))
    if choice == 0 and node.output:
        node.output[0] = _pick(rng, _tensor_names(model))
    elif choice == 1:
        node.output.append("extra_out")
    elif node.output:
        del node.output[0]
    return f"node {node.name} outputs -> {list(node.output)}"


def m_op_type(model, rng):
    node = _pick(rng, _nodes(model))
    node.op_type = _pick(rng, OP_TYPES)
    return f"node {node.name} op -> {node.op_type}"


def m_node_drop(model, rng):
    nodes = model.graph.node
    i = int(rng.integers(len(nodes)))
    name = nodes[i].name
    del nodes[i]
    return f"node {name} dropped"


def m_tensor_dims(model, rng):
    cands = list(model.graph.initializer)
    t = _pick(rng, cands)
    if not t.dims:
        t.dims.append(1)
    else:
        j = int(rng.integers(len(t.dims)))
        t.dims[j] = _pick(rng, (t.dims[j] + 1, t.dims[j] - 1, 0, -1, 2**40, 1))
    return f"tensor {t.name} dims -> {list(t.dims)}"


def m_tensor_type(model, rng):
    t = _pick(rng, list(model.graph.initializer) + _small_tensors(model))
    t.data_type = int(_pick(rng, ELEM_TYPES))
    return f"tensor {t.name} type -> {t.data_type}"


def m_tensor_value(model, rng):
    cands = [t for t in _small_tensors(model) if t.data_type in (TensorProto.INT64, TensorProto.FLOAT)]
    if not cands:
        return None
    t = _pick(rng, cands)
    array = onnx.numpy_helper.to_array(t).copy()
    if array.size == 0:
        return None
    flat = array.reshape(-1)
    k = int(rng.integers(flat.size))
    flat[k] = _pick(rng, INTS[:-1]) if array.dtype.kind == "i" else _pick(rng, FLOATS)
    t.CopyFrom(onnx.numpy_helper.from_array(array, t.name))
    return f"tensor {t.name} value[{k}] -> {flat[k]}"


def m_graph_input(model, rng):
    v = _pick(rng, list(model.graph.input))
    tt = v.type.tensor_type
    choice = int(rng.integers(3))
    if choice == 0:
        tt.elem_type = int(_pick(rng, ELEM_TYPES))
    elif choice == 1 and tt.shape.dim:
        d = tt.shape.dim[int(rng.integers(len(tt.shape.dim)))]
        d.dim_value = int(_pick(rng, (-3, 0, 1, 7, 31)))
    else:
        tt.shape.dim.add().dim_value = 1
    dims = [d.dim_value or d.dim_param for d in tt.shape.dim]
    return f"graph input {v.name} -> type {tt.elem_type} dims {dims}"


def m_graph_output(model, rng):
    outputs = model.graph.output
    choice = int(rng.integers(3))
    if choice == 0:
        del outputs[:]
    elif choice == 1:
        outputs[0].name = _pick(rng, _tensor_names(model) + ["nowhere"])
    else:
        outputs[0].type.tensor_type.elem_type = int(_pick(rng, ELEM_TYPES))
    return f"graph outputs -> {[o.name for o in outputs]}"


def m_opset(model, rng):
    version = int(rng.integers(-1, 31))
    model.opset_import[0].version = version
    return f"opset -> {version}"


STRUCTURED = (m_attr_int, m_attr_int, m_attr_float, m_attr_type, m_attr_add, m_attr_drop, m_input, m_input,
              m_output, m_op_type, m_op_type, m_node_drop, m_tensor_dims, m_tensor_type, m_tensor_value,
              m_tensor_value, m_graph_input, m_graph_output, m_opset)


def mutant(data: bytes, seed: int) -> tuple[str, bytes]:
    """(description, serialized mutant) number ``seed`` of the model ``data``."""
    rng = np.random.default_rng([seed, 20240])
    kind = int(rng.integers(10))
    if kind == 0:  # truncate
        cut = int(rng.integers(1, len(data)))
        return f"truncate: at {cut}", data[:cut]
    if kind == 1:  # flip bytes in the first 4 KiB (graph structure precedes most weights)
        buf = bytearray(data)
        where = []
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(min(len(buf), 4096)))
            buf[i] ^= 1 << int(rng.integers(8))
            where.append(i)
        return f"flip: bytes {where}", bytes(buf)
    model = onnx.ModelProto()
    model.ParseFromString(data)
    for _ in range(10):
        fn = _pick(rng, STRUCTURED)
        description = fn(model, rng)
        if description is not None:
            return f"{fn.__name__[2:]}: {description}", model.SerializeToString()
    return "unchanged: ", data
