"""Load an ONNX file and lower it to an accelsim Program.

Steps: read the file (one-line error for a missing, truncated or corrupt file, or an opset
outside the tested range); load the external data of every tensor only from inside the model's
folder; check the graph, its tensors and nodes (``frontend/validate.py``); check every op has a
lowering rule (one error listing every unsupported op type with its node names); strict ONNX
shape inference; lower node by node (constant folding in ``LoweringContext.emit``); name
parameters and label their components.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
from google.protobuf.message import Error as ProtobufError
from onnx import numpy_helper

import frontend.ops  # noqa: F401  (registers every lowering rule)
from accelsim.ir import Parameter, Program, ProgramError, TensorSpec
from frontend.components import component_label, module_path_of_metadata, stable_parameter_name
from frontend.registry import RULES, FrontendError, LoweringContext, numpy_dtype
from frontend.validate import (check_graph, check_nodes, check_opset, check_tensors, check_text,
                               infer_shapes, load_external_data)


def load_onnx(
    path: str | os.PathLike[str],
    *,
    component_rewrites: Iterable[tuple[str, str]] = (),
) -> Program:
    """Load the ONNX file at ``path`` and lower it to a :class:`Program`.

    Args:
        component_rewrites: (regex, replacement) pairs applied to module paths before the
            defaults of ``frontend.components`` (user mapping of component labels).
    """
    path = Path(path)
    model = read_model(path)
    return lower_model(model, name=path.stem, component_rewrites=component_rewrites)


def read_model(path: Path) -> onnx.ModelProto:
    """Parse ``path`` and resolve external data from inside its folder."""
    if not path.is_file():
        raise FrontendError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except _UNREADABLE_MODEL as exc:
        raise FrontendError(
            f"{path}: not a readable ONNX model (truncated or corrupt file: {type(exc).__name__})"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise FrontendError(f"{path}: not a readable ONNX model (empty graph)")
    try:
        check_text(model)
        check_opset(model)
    except FrontendError as exc:
        raise FrontendError(f"{path}: {exc}") from None
    load_external_data(model, path)
    return model


# What onnx.load raises on a bad file: protobuf DecodeError (binary) / ParseError (json,
# textproto), onnx.parser.ParseError (onnxtxt), UnicodeDecodeError and other ValueErrors, OSError.
_UNREADABLE_MODEL = (ProtobufError, onnx.parser.ParseError, ValueError, OSError)


def _all_nodes(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    """Every node of ``graph`` and of its subgraphs (Loop/If/Scan bodies)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                yield from _all_nodes(sub)


def _default_opset(model: onnx.ModelProto) -> int:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return opset.version
    return 1


def _shapes_from_inference(
    model: onnx.ModelProto, types: dict[str, int] | None = None
) -> dict[str, tuple[int | str, ...]]:
    # A model of 2 GB or more in memory cannot be serialized for ONNX's shape inference: it is
    # lowered without inferred shapes (the rules fall back on constants and their own shapes).
    inferred = infer_shapes(model) if model.ByteSize() < _PROTOBUF_LIMIT else model
    shapes: dict[str, tuple[int | str, ...]] = {}
    graph = inferred.graph
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        if types is not None and value.type.HasField("tensor_type"):
            types[value.name] = value.type.tensor_type.elem_type
        if value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"):
            dims = []
            for dim in value.type.tensor_type.shape.dim:
                dims.append(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?"))
            shapes[value.name] = tuple(dims)
    return shapes


_PROTOBUF_LIMIT = 2**31 - 1


def _printable(text: str) -> str:
    """``text`` with control characters escaped (a name from a file may hold anything)."""
    return text if text.isprintable() else repr(text)[1:-1]


def check_supported(graph: onnx.GraphProto) -> None:
    """Raise one error listing every op type without a rule, with its node names."""
    missing: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type not in RULES or node.domain not in ("", "ai.onnx"):
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            name = node.name or (node.output[0] if node.output else "unnamed")
            missing.setdefault(_printable(key), []).append(_printable(name))
    if missing:
        listing = "; ".join(
            f"{op} ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
            for op, names in sorted(missing.items())
        )
        raise FrontendError(f"unsupported ONNX op(s): {listing}")


def check_defined(graph: onnx.GraphProto) -> None:
    """Every node input must be a graph input, an initializer or an earlier node's output."""
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    for node in graph.node:
        for tensor in node.input:
            if tensor not in defined:
                raise FrontendError(
                    f"node {node.name or node.op_type!r} ({node.op_type}) reads tensor {tensor!r} "
                    "that no graph input, initializer or earlier node defines"
                )
        defined.update(node.output)
    for output in graph.output:
        if output.name not in defined:
            raise FrontendError(f"graph output {output.name!r} is never computed")


def lower_model(
    model: onnx.ModelProto,
    *,
    name: str = "model",
    component_rewrites: Iterable[tuple[str, str]] = (),
) -> Program:
    """Lower a parsed ONNX model (external data already loaded) to a Program."""
    graph = model.graph
    check_graph(graph)
    check_tensors(model)
    check_supported(graph)
    check_nodes(graph, _default_opset(model))
    check_defined(graph)
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    parameter_names = {
        tensor_name
        for tensor_name, value in initializers.items()
        if value.dtype.kind == "f" and value.ndim >= 1 and value.size >= 1
    }
    value_types: dict[str, int] = {}
    ctx = LoweringContext(
        initializers=initializers,
        parameter_names=parameter_names,
        value_shapes=_shapes_from_inference(model, value_types),
        opset=_default_opset(model),
        opset_imports={opset.domain: opset.version for opset in model.opset_import},
    )
    ctx.value_types = value_types
    for tensor_name, value in initializers.items():
        if tensor_name not in parameter_names:
            ctx.constants[tensor_name] = value
    for reader, tensor_name in [(n.op_type, t) for n in _all_nodes(graph) for t in n.input if t] + [
        ("<graph output>", v.name) for v in graph.output
    ]:
        ctx.readers.setdefault(tensor_name, []).append(reader)
    for node in graph.node:
        RULES[node.op_type](ctx, node)

    initializer_names = set(initializers)
    inputs = tuple(
        TensorSpec(v.name, numpy_dtype(v.type.tensor_type.elem_type, f"graph input {v.name!r}"),
                   _spec_shape(v))
        for v in graph.input
        if v.name not in initializer_names
    )
    outputs = tuple(
        TensorSpec(v.name, numpy_dtype(v.type.tensor_type.elem_type, f"graph output {v.name!r}"),
                   _spec_shape(v))
        for v in graph.output
    )
    scopes = {node.name: module_path_of_metadata(node) for node in graph.node if node.metadata_props}
    return _assemble(ctx, inputs, outputs, name, tuple(component_rewrites), scopes)


def _spec_shape(value: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    dims = []
    for dim in value.type.tensor_type.shape.dim:
        dims.append(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?"))
    return tuple(dims)


def _assemble(
    ctx: LoweringContext,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    name: str,
    rewrites: tuple[tuple[str, str], ...],
    scopes: dict[str, str | None],
) -> Program:
    """Rename parameters to stable names, label components, drop dead code and unused constants.

    ``scopes``: node name -> module path from dynamo metadata (for auto-named initializers).
    """
    graph_outputs = {spec.name for spec in outputs}
    ctx.instructions = _live_instructions(ctx.instructions, graph_outputs)
    read = {tensor for inst in ctx.instructions for tensor in inst.inputs}
    renames: dict[str, str] = {}
    parameters: dict[str, Parameter] = {}
    values: dict[str, np.ndarray] = {}
    for init_name in sorted(n for n in ctx.parameter_names if n in read or n in graph_outputs):
        claim = ctx.claims.get(init_name)
        consumer = claim.component_hint if claim else _first_reader(ctx, init_name)
        role = claim.role if claim else "other"
        component = component_label(init_name, consumer, rewrites, scopes.get(consumer))
        stable = stable_parameter_name(init_name, component, role, set(parameters))
        renames[init_name] = stable
        value = np.ascontiguousarray(ctx.initializers[init_name], dtype=np.float32)
        parameters[stable] = Parameter(
            name=stable,
            shape=tuple(int(d) for d in value.shape),
            component=component,
            role=role,
            channel_axis=claim.channel_axis if claim else None,
            source=ctx.parameter_sources.get(init_name, init_name),
        )
        values[stable] = value
    instructions = tuple(
        type(inst)(inst.op, inst.name, tuple(renames.get(t, t) for t in inst.inputs),
                   inst.outputs, dict(inst.attrs))
        for inst in ctx.instructions
    )
    constants = {k: np.asarray(v) for k, v in ctx.constants.items() if k in read}
    for spec in outputs:
        if spec.name in ctx.constants and not any(spec.name in i.outputs for i in instructions):
            raise FrontendError(f"graph output {spec.name!r} is a constant; nothing to simulate")
    try:
        return Program(
            inputs=inputs,
            outputs=outputs,
            parameters=parameters,
            parameter_values=values,
            constants=constants,
            instructions=instructions,
            name=name,
        )
    except ProgramError as exc:
        raise FrontendError(f"lowered program is invalid: {exc}") from None


def _live_instructions(instructions: list, needed: set[str]) -> list:
    """Drop instructions none of whose outputs is read later or is a graph output (e.g. the
    shape arithmetic and row gathers that fed a Loop now lowered to one embedding_bag)."""
    needed = set(needed)
    live = []
    for inst in reversed(instructions):
        if any(out in needed for out in inst.outputs):
            live.append(inst)
            needed.update(t for t in inst.inputs if t)
    return live[::-1]


def _first_reader(ctx: LoweringContext, tensor: str) -> str:
    for inst in ctx.instructions:
        if tensor in inst.inputs:
            return inst.name
    return tensor
