"""Lowering rules, registered by ONNX op type, and the context they lower into.

A lowering rule is ``fn(ctx, node) -> None``: it reads the ONNX ``node`` (attributes via
``ctx.attrs(node)``, which fills every attribute the node leaves out from the ONNX operator
schema's default at the model's opset — see ``frontend/attributes.py``; constant operands via
``ctx.constant(name)``) and emits IR instructions with ``ctx.emit``. One rule per ONNX op
type, one module per op family (``frontend/ops/*.py``), registered with ``@lowering``.

Constant folding happens in ``ctx.emit``: an instruction whose inputs are all constants (not
parameters, not graph inputs) is evaluated at load time with the accelsim kernel of the same
op and its outputs become constants. Float initializers of rank >= 1 (not 0-d scalars) are
parameters and never fold.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper

from accelsim.checks import InputDataError, check_args
from accelsim.errors import UserError
from accelsim.ir import Instruction, unique_name
from accelsim.kernels import KERNELS
from frontend.attributes import DEFAULT_DOMAINS, explicit_attributes, node_attributes

LoweringRule = Callable[["LoweringContext", onnx.NodeProto], None]

RULES: dict[str, LoweringRule] = {}


class FrontendError(UserError, ValueError):
    """A model cannot be loaded or lowered; the message is one line saying what and where.

    Only for problems of the user's model or file; a broken invariant of the frontend itself
    raises ``RuntimeError`` (a bug, shown with its traceback).
    """


class NodeAttributes(dict):
    """``ctx.attrs(node)``: attribute name -> value; reading an absent one with ``[]`` is a
    one-line :class:`FrontendError` (the node must set it: its schema has no default)."""

    def __init__(self, values: dict[str, Any], node: onnx.NodeProto, opset: int | None) -> None:
        super().__init__(values)
        self._where = f"node {node.name or node.output[0]!r} ({node.op_type})"
        domain = "" if node.domain in DEFAULT_DOMAINS else f"{node.domain}."
        self._schema = f"{domain}{node.op_type} at opset {opset}"

    def __missing__(self, name: str) -> Any:
        raise FrontendError(
            f"{self._where}: attribute {name} is required (not set, and the ONNX schema of "
            f"{self._schema} gives no default)"
        )


def lowering(*op_types: str) -> Callable[[LoweringRule], LoweringRule]:
    """Register ``fn`` as the lowering rule of every ONNX op type in ``op_types``."""

    def register(fn: LoweringRule) -> LoweringRule:
        for op_type in op_types:
            if op_type in RULES:
                raise RuntimeError(f"ONNX op {op_type!r} has two lowering rules")
            RULES[op_type] = fn
        return fn

    return register


@dataclass
class ParameterClaim:
    """What a rule says about an initializer it reads as a parameter."""

    role: str
    channel_axis: int | None
    component_hint: str  # node name of the consumer, for component labels


@dataclass
class LoweringContext:
    """State of one lowering: known constants, initializers, emitted instructions.

    Attributes:
        initializers: ONNX initializer name -> fp32/int array (all initializers, incl. params).
        constants: tensor name -> array known at load time (non-parameter initializers,
            Constant nodes, folded results).
        parameter_names: initializer names that are parameters (float, rank >= 1).
        instructions: emitted IR instructions, in order.
        claims: parameter initializer name -> role/channel axis claimed by a rule.
        value_shapes: tensor name -> shape from ONNX shape inference (ints or symbolic str).
        opset: the model's default-domain opset version.
        opset_imports: domain -> opset version for every domain the model imports (the
            default domain may be absent here; ``opset`` is authoritative for it).
        readers: tensor name -> op type of every ONNX node input reading it (subgraphs
            included) and ``"<graph output>"`` per graph output it is.
        value_types: tensor name -> ONNX element type (TensorProto.*) from shape inference.
        parameter_sources: parameter initializer name -> provenance when a rule rewrote or
            created its value (e.g. BatchNorm folded into a conv); default: its own name.
    """

    initializers: dict[str, np.ndarray]
    parameter_names: set[str]
    value_shapes: dict[str, tuple[int | str, ...]]
    opset: int
    opset_imports: dict[str, int] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    instructions: list[Instruction] = field(default_factory=list)
    claims: dict[str, ParameterClaim] = field(default_factory=dict)
    readers: dict[str, list[str]] = field(default_factory=dict)
    value_types: dict[str, int] = field(default_factory=dict)
    parameter_sources: dict[str, str] = field(default_factory=dict)
    _taken_names: set[str] = field(default_factory=set)
    _tensor_counter: int = 0

    # ------------------------------------------------------------- reading the node
    def opset_of(self, domain: str) -> int | None:
        """The model's opset version for ``domain``; None if the model does not import it."""
        if domain in DEFAULT_DOMAINS:
            return self.opset
        return self.opset_imports.get(domain)

    def attrs(self, node: onnx.NodeProto, *, schema_defaults: bool = True) -> NodeAttributes:
        """The node's attributes as Python values (tensors as numpy arrays, strings as str).

        With ``schema_defaults`` (the normal case) every attribute the node leaves out is
        filled from the ONNX schema of its op at the model's opset, when the schema has a
        default; without, only the attributes the node itself sets. ``attrs[name]`` of an
        attribute still absent raises a one-line FrontendError; ``attrs.get`` does not.
        """
        opset = self.opset_of(node.domain)
        if not schema_defaults:
            return NodeAttributes(explicit_attributes(node), node, opset)
        return NodeAttributes(node_attributes(node, opset), node, opset)

    def constant(self, name: str) -> np.ndarray | None:
        """Load-time value of tensor ``name`` if it is a constant (never a parameter)."""
        if not name or name in self.parameter_names:
            return None
        return self.constants.get(name)

    def require_constant(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray | None:
        """Input ``index`` of ``node`` as a load-time constant, None if absent; error if dynamic."""
        if index >= len(node.input) or not node.input[index]:
            return None
        value = self.constant(node.input[index])
        if value is None:
            raise FrontendError(
                f"node {node.name!r} ({node.op_type}): {what} (input {node.input[index]!r}) must be "
                "a constant known at load time"
            )
        return value

    def shape(self, name: str) -> tuple[int | str, ...] | None:
        """Shape from shape inference (or of a constant), None if unknown."""
        if name in self.constants:
            return tuple(self.constants[name].shape)
        if name in self.initializers:
            return tuple(self.initializers[name].shape)
        return self.value_shapes.get(name)

    def is_parameter(self, name: str) -> bool:
        return name in self.parameter_names

    def claim_parameter(
        self, name: str, node: onnx.NodeProto, role: str, channel_axis: int | None = None
    ) -> None:
        """Say that initializer ``name`` (read by ``node``) is a parameter with this role."""
        if name in self.parameter_names and name not in self.claims:
            self.claims[name] = ParameterClaim(role, channel_axis, node.name or node.output[0])

    def elem_type(self, name: str) -> int | None:
        """ONNX element type of tensor ``name`` if known (shape inference or a constant)."""
        if name in self.value_types and self.value_types[name]:
            return self.value_types[name]
        value = self.constants.get(name, self.initializers.get(name))
        if value is None:
            return None
        return int(helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype))

    def reader_count(self, name: str, *, values_only: bool = False) -> int:
        """How many ONNX node inputs and graph outputs read tensor ``name``.

        ``values_only`` leaves out Shape/Size nodes, which read only the shape.
        """
        readers = self.readers.get(name, [])
        if values_only:
            readers = [op for op in readers if op not in ("Shape", "Size")]
        return len(readers)

    def replace_parameter_value(self, name: str, value: np.ndarray, source: str) -> None:
        """Give parameter initializer ``name`` a new value (e.g. BatchNorm folded into it)."""
        if name not in self.parameter_names:
            raise RuntimeError(f"internal: {name!r} is not a parameter")
        value = np.asarray(value, dtype=np.float32)
        if value.shape != self.initializers[name].shape:
            raise RuntimeError(f"internal: new value of {name!r} changes its shape")
        self.initializers[name] = value
        self.parameter_sources[name] = source

    def add_parameter(
        self, name: str, value: np.ndarray, node_name: str, role: str,
        channel_axis: int | None, source: str,
    ) -> str:
        """Create a new parameter (name made unique) claimed for ``node_name``; return its name."""
        taken = set(self.initializers) | set(self.constants) | set(self.value_shapes)
        unique = unique_name(name, taken)
        self.initializers[unique] = np.asarray(value, dtype=np.float32)
        self.parameter_names.add(unique)
        self.claims[unique] = ParameterClaim(role, channel_axis, node_name)
        self.parameter_sources[unique] = source
        return unique

    # ------------------------------------------------------------- writing IR
    def fresh_tensor(self, hint: str) -> str:
        """A new internal tensor name."""
        self._tensor_counter += 1
        return f"{hint}__{self._tensor_counter}"

    def add_constant(self, value: np.ndarray, hint: str = "const") -> str:
        """Register a new load-time constant and return its name."""
        name = self.fresh_tensor(hint)
        self.constants[name] = np.asarray(value)
        return name

    def alias(self, output: str, source: str) -> None:
        """Make ``output`` the same tensor as ``source`` (identity; emitted as a view op)."""
        self.emit("identity", [source], [output], {}, name=f"{output}::identity")

    def emit(
        self,
        op: str,
        inputs: list[str],
        outputs: list[str],
        attrs: dict[str, Any] | None = None,
        *,
        name: str,
    ) -> None:
        """Append an IR instruction, or fold it into constants if every input is constant."""
        if op not in KERNELS:
            raise RuntimeError(f"internal: IR op {op!r} (for {name!r}) has no kernel")
        attrs = dict(attrs or {})
        present = [tensor for tensor in inputs if tensor]
        if all(self.constant(tensor) is not None for tensor in present):
            inst = Instruction(op, name, tuple(inputs), tuple(outputs), attrs)
            args = [self.constants[t] if t else None for t in inputs]
            try:
                check_args(inst, args)
            except InputDataError as exc:
                raise FrontendError(f"node {name!r}: the model's constants do not fit {op}: {exc}") from None
            try:
                results = KERNELS[op](inst, args)
            except Exception as exc:  # broad on purpose: the kernel failed on the model's own constants
                raise FrontendError(
                    f"node {name!r}: constant folding of {op} failed: {type(exc).__name__}: {exc}"
                ) from exc
            for tensor, value in zip(outputs, results):
                self.constants[tensor] = np.asarray(value)
            return
        unique = unique_name(name or outputs[0], self._taken_names)
        self._taken_names.add(unique)
        self.instructions.append(Instruction(op, unique, tuple(inputs), tuple(outputs), attrs))


ONNX_TO_NUMPY_DTYPE = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.UINT16: "uint16",
    onnx.TensorProto.UINT32: "uint32",
    onnx.TensorProto.UINT64: "uint64",
    onnx.TensorProto.BOOL: "bool",
}


def type_name(onnx_type: int) -> str:
    """Name of an ONNX element type (``FLOAT``), or ``type <n>`` for a number ONNX does not define."""
    try:
        return onnx.TensorProto.DataType.Name(onnx_type)
    except ValueError:
        return f"type {onnx_type}"


def numpy_dtype(onnx_type: int, where: str) -> str:
    """numpy dtype name of an ONNX element type; one-line error for unsupported ones."""
    try:
        return ONNX_TO_NUMPY_DTYPE[onnx_type]
    except KeyError:
        raise FrontendError(f"{where}: element type {type_name(onnx_type)} is not supported") from None
