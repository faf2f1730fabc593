"""Checks of a parsed ONNX model before it is lowered: every refusal is one :class:`FrontendError`
line naming the tensor, node or graph field.

* :func:`check_opset` — the default-domain opset must lie in :data:`OPSET_RANGE`, the versions
  the frontend is tested on (the ONNX backend node tests run from opset 7; 28 is the newest
  opset of the pinned ``onnx``);
* :func:`load_external_data` — external data of *every* tensor (initializers, Constant nodes,
  tensors inside Loop/If/Scan bodies) is read only from a regular file inside the model's
  folder: no absolute path, no ``..``, no symbolic link that leaves it;
* :func:`check_tensors` — known element type, no negative dim, stored data matching the dims;
* :func:`check_graph` — the graph has outputs; names of inputs, outputs and initializers are
  unique; graph inputs/outputs have known element types and no negative dims;
* :func:`check_nodes` — input/output counts and attribute names and types against the ONNX
  schema of each node's op at the model's opset;
* :func:`infer_shapes` — ONNX shape inference in strict mode: a node whose input shapes or
  attributes contradict its operator (``Gemm`` of [N, 5] by [4, 3], a Concat axis past the
  rank, ...) is refused here instead of failing inside a kernel.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import onnx
from onnx import external_data_helper

from frontend.attributes import DEFAULT_DOMAINS, earliest_schema
from frontend.registry import ONNX_TO_NUMPY_DTYPE, FrontendError, type_name

OPSET_RANGE = (7, 28)

# Typed field holding the values of a tensor stored without raw_data, by element type.
_TYPED_FIELD = {
    onnx.TensorProto.FLOAT: "float_data",
    onnx.TensorProto.DOUBLE: "double_data",
    onnx.TensorProto.INT64: "int64_data",
    onnx.TensorProto.UINT32: "uint64_data",
    onnx.TensorProto.UINT64: "uint64_data",
}


def check_text(message, where: str = "model") -> None:
    """Every string field of ``message`` (recursively) must be UTF-8 text: ONNX files are
    parsed without that check, and a byte-flipped name would surface later as bytes."""
    try:
        fields = message.ListFields()
    except UnicodeDecodeError:
        raise FrontendError(f"not a readable ONNX model: {where} holds a name or text that is not UTF-8") from None
    for field, value in fields:
        if field.type == field.TYPE_STRING:
            values = value if field.is_repeated else [value]
            if any(not isinstance(v, str) for v in values):
                raise FrontendError(f"not a readable ONNX model: {where}.{field.name} is not UTF-8 text")
        elif field.type == field.TYPE_MESSAGE:
            for item in (value if field.is_repeated else [value]):
                check_text(item, f"{where}.{field.name}")


def check_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset; one line if it is missing or outside :data:`OPSET_RANGE`."""
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    lo, hi = OPSET_RANGE
    if not versions:
        raise FrontendError("the model imports no default-domain (ai.onnx) opset")
    if len(versions) > 1:
        raise FrontendError(f"the model imports the default-domain opset {len(versions)} times")
    if not lo <= versions[0] <= hi:
        raise FrontendError(f"opset {versions[0]} is outside the opsets accelsim is tested on ({lo}..{hi})")
    return versions[0]


# ----------------------------------------------------------------------------- tensors
def graph_tensors(graph: onnx.GraphProto, where: str = "") -> Iterator[tuple[str, onnx.TensorProto]]:
    """(description, tensor) of every tensor of ``graph`` and its subgraphs: initializers and
    tensor-valued node attributes (Constant ``value`` and others)."""
    for tensor in graph.initializer:
        yield f"{where}initializer {tensor.name!r}", tensor
    for node in graph.node:
        label = f"{where}node {node.name or (node.output[0] if node.output else node.op_type)!r} ({node.op_type})"
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield f"{label} attribute {attribute.name}", attribute.t
            elif attribute.type == onnx.AttributeProto.TENSORS:
                for tensor in attribute.tensors:
                    yield f"{label} attribute {attribute.name}", tensor
            elif attribute.type in (onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.SPARSE_TENSORS):
                raise FrontendError(f"{label}: sparse tensor attribute {attribute.name} is not supported")
            for sub in _subgraphs(attribute):
                yield from graph_tensors(sub, f"{label} body: ")


def _subgraphs(attribute: onnx.AttributeProto) -> Iterable[onnx.GraphProto]:
    if attribute.type == onnx.AttributeProto.GRAPH:
        return [attribute.g]
    if attribute.type == onnx.AttributeProto.GRAPHS:
        return list(attribute.graphs)
    return []


def load_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Read the external data of every tensor from inside the model's folder (in place)."""
    folder = path.resolve().parent
    for where, tensor in graph_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if not location or "\x00" in location:
            raise FrontendError(f"{path}: {where} has external data without a usable location")
        target = (folder / location).resolve()
        if os.path.isabs(location) or os.path.commonpath([str(folder), str(target)]) != str(folder):
            raise FrontendError(f"{path}: {where} points to external data {location!r} outside the model's folder")
        if not target.is_file():
            raise FrontendError(f"{path}: {where}: external data file {location!r} is missing or not a regular file")
        try:
            external_data_helper.load_external_data_for_tensor(tensor, str(folder))
        except _UNREADABLE_EXTERNAL_DATA as exc:
            raise FrontendError(f"{path}: {where}: external data {location!r} could not be read: {exc}") from None


# What onnx raises on bad external data: OSError (unreadable file), ValueError (offset/length
# not numbers, or past the end of the file), ValidationError (a symbolic link or not a regular
# file, found by onnx's own location check).
_UNREADABLE_EXTERNAL_DATA = (OSError, ValueError, onnx.checker.ValidationError)


def check_tensors(model: onnx.ModelProto) -> None:
    """Element type, dims and stored size of every tensor (after external data is loaded)."""
    if len(model.graph.sparse_initializer):
        raise FrontendError(f"sparse initializer {model.graph.sparse_initializer[0].values.name!r} is not supported")
    for where, tensor in graph_tensors(model.graph):
        check_tensor(tensor, where)


def check_tensor(tensor: onnx.TensorProto, where: str) -> None:
    if tensor.data_type not in ONNX_TO_NUMPY_DTYPE:
        raise FrontendError(f"{where}: element type {type_name(tensor.data_type)} is not supported")
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise FrontendError(f"{where}: negative dim in {dims}")
    if tensor.HasField("segment"):
        raise FrontendError(f"{where}: segmented tensors are not supported")
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        raise RuntimeError(f"internal: {where} still has external data after loading")
    count = math.prod(dims)
    if tensor.HasField("raw_data"):
        itemsize = np.dtype(ONNX_TO_NUMPY_DTYPE[tensor.data_type]).itemsize
        stored = len(tensor.raw_data)
        if stored != count * itemsize:
            raise FrontendError(f"{where}: {stored} bytes of data for dims {dims} "
                                f"({count} elements of {itemsize} bytes)")
        return
    stored = len(getattr(tensor, _TYPED_FIELD.get(tensor.data_type, "int32_data")))
    if stored != count:
        raise FrontendError(f"{where}: {stored} values for dims {dims} ({count} elements)")


# ----------------------------------------------------------------------------- graph
def check_graph(graph: onnx.GraphProto, where: str = "graph") -> None:
    """Outputs present, unique names, element types and dims of inputs and outputs."""
    if not graph.output:
        raise FrontendError(f"{where} {graph.name!r} has no outputs; nothing to compute")
    for kind, names in (("input", [v.name for v in graph.input]), ("output", [v.name for v in graph.output]),
                        ("initializer", [t.name for t in graph.initializer])):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise FrontendError(f"{where} {kind} {name!r} is listed twice")
            seen.add(name)
    initializers = {t.name for t in graph.initializer}
    for kind, values in (("input", graph.input), ("output", graph.output)):
        for value in values:
            if kind == "input" and value.name in initializers:
                continue
            _check_value(value, f"{where} {kind} {value.name!r}")


def _check_value(value: onnx.ValueInfoProto, where: str) -> None:
    if not value.type.HasField("tensor_type"):
        raise FrontendError(f"{where}: only tensors are supported (not sequences, maps or optionals)")
    tensor_type = value.type.tensor_type
    if tensor_type.elem_type not in ONNX_TO_NUMPY_DTYPE:
        raise FrontendError(f"{where}: element type {type_name(tensor_type.elem_type)} is not supported")
    for axis, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value < 0:
            raise FrontendError(f"{where}: dim {axis} is {dim.dim_value} (negative)")


def check_nodes(graph: onnx.GraphProto, opset: int, where: str = "") -> None:
    """Input/output counts and attribute names and types of every default-domain node (and
    of the nodes of its subgraphs) against its ONNX schema at ``opset``."""
    for node in graph.node:
        label = f"{where}node {node.name or (node.output[0] if node.output else node.op_type)!r} ({node.op_type})"
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.UNDEFINED:
                raise FrontendError(f"{label}: attribute {attribute.name!r} has no type")
            for sub in _subgraphs(attribute):
                check_nodes(sub, opset, f"{label} body: ")
        if node.domain not in DEFAULT_DOMAINS:
            continue
        schema = _schema(node.op_type, opset)
        if schema is None:
            continue  # not an ONNX op: check_supported names it
        _check_counts(node, schema, label)
        _check_attributes(node, schema, label, opset)


def _schema(op_type: str, opset: int):
    try:
        return onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:  # an op newer than the model's opset: its earliest schema
        return earliest_schema(op_type, "")


def _check_counts(node: onnx.NodeProto, schema, label: str) -> None:
    n_in, n_out = len(node.input), len(node.output)
    if not schema.min_input <= n_in <= schema.max_input:
        raise FrontendError(f"{label}: {n_in} inputs, {node.op_type} takes {_span(schema.min_input, schema.max_input)}")
    if not schema.min_output <= n_out <= schema.max_output:
        raise FrontendError(f"{label}: {n_out} outputs, {node.op_type} has {_span(schema.min_output, schema.max_output)}")
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    for index, name in enumerate(node.input):
        formal = schema.inputs[min(index, len(schema.inputs) - 1)] if schema.inputs else None
        if not name and formal is not None and formal.option != optional:
            raise FrontendError(f"{label}: required input {index} ({formal.name}) is empty")


def _span(lo: int, hi: int) -> str:
    if lo == hi:
        return str(lo)
    return f"at least {lo}" if hi >= 2**31 - 1 else f"{lo} to {hi}"


def _check_attributes(node: onnx.NodeProto, schema, label: str, opset: int) -> None:
    seen: set[str] = set()
    for attribute in node.attribute:
        if attribute.name in seen:
            raise FrontendError(f"{label}: attribute {attribute.name!r} is set twice")
        seen.add(attribute.name)
        spec = schema.attributes.get(attribute.name)
        if spec is None:
            raise FrontendError(f"{label}: unknown attribute {attribute.name!r} for {node.op_type} at opset {opset}")
        expected = int(spec.type.value)
        if attribute.type != expected:
            raise FrontendError(
                f"{label}: attribute {attribute.name!r} is {_attr_type(attribute.type)}, "
                f"{node.op_type} expects {_attr_type(expected)}"
            )


    for name, spec in schema.attributes.items():
        if spec.required and name not in seen:
            raise FrontendError(f"{label}: attribute {name} is required (not set, and the ONNX schema of "
                                f"{node.op_type} at opset {opset} gives no default)")


def _attr_type(value: int) -> str:
    try:
        return onnx.AttributeProto.AttributeType.Name(value)
    except ValueError:
        return f"type {value}"


def infer_shapes(model: onnx.ModelProto, context: str = "") -> onnx.ModelProto:
    """The model with inferred value infos (strict ONNX shape inference); one line on a
    contradiction between a node and its inputs (``context`` says which input shapes)."""
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise FrontendError(f"{context}{_inference_message(str(exc))}") from None


_NODE_ERROR = re.compile(r"\(op_type:([^,]*), node name: ([^)]*)\): \[\w+\] (.*?)(?= \(op_type:|$)")


def _inference_message(text: str) -> str:
    """ONNX's inference report as one line: the first node it blames and why."""
    flat = " ".join(line.strip() for line in text.splitlines() if line.strip())
    match = _NODE_ERROR.search(flat)
    if match:
        op_type, name, reason = match.groups()
        return f"node {name!r} ({op_type}): {reason.strip()} (ONNX shape inference)"
    return f"ONNX shape inference fails: {flat[:300] or 'no reason given'}"


# ----------------------------------------------------------------------------- concrete shapes
_SMALL = 64  # elements: initializers and constants this small keep their values (shape data)


def shape_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` for shape checks with concrete input shapes: large initializers and
    Constant values become graph inputs of the same type and shape (no weights are copied),
    inferred value infos are dropped."""
    return _without_weights(model)


def _without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    graph = light.graph
    graph.name = model.graph.name
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    declared = {v.name for v in graph.input}
    for tensor in model.graph.initializer:
        if math.prod(tensor.dims) <= _SMALL:
            graph.initializer.append(tensor)
        elif tensor.name not in declared:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    for node in model.graph.node:
        value = next((a.t for a in node.attribute if a.name == "value" and a.type == onnx.AttributeProto.TENSOR),
                     None)
        if node.op_type == "Constant" and value is not None and math.prod(value.dims) > _SMALL and node.output:
            graph.input.append(onnx.helper.make_tensor_value_info(node.output[0], value.data_type, list(value.dims)))
            continue
        graph.node.append(node)
    return light


def check_input_shapes(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> None:
    """Strict shape inference of :func:`shape_model` output ``model`` with the graph inputs
    bound to ``shapes``: a node whose operands do not fit these shapes (a Reshape to a size
    the batch does not have, a Concat of different batch sizes, ...) is refused with one line
    before anything runs."""
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    for value in bound.graph.input:
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape
        del dims.dim[:]
        for size in shapes[value.name]:
            dims.dim.add().dim_value = int(size)
    described = ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())
    infer_shapes(bound, context=f"inputs of shape {described}: ")
