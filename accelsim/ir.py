"""The accelerator's instruction form (IR).

A :class:`Program` is a straight-line list of :class:`Instruction` over named tensors.
Three kinds of named tensor exist:

* graph inputs (``Program.inputs``): activations supplied per inference, leading axis = batch;
* parameters (``Program.parameters``): model weights that live in HBM and can be corrupted;
  each has a stable name, a shape, a component label and the axis that holds its output
  channels (used by per-channel int8 storage and by the schedule);
* constants (``Program.constants``): small non-parameter tensors (shape vectors, scalars,
  integer index buffers) that are never corrupted.

Every instruction output is an activation. Instructions are in a valid execution order
(topological), and each names its IR op (``Instruction.op``, e.g. ``"gemm"``, ``"conv"``),
the tensors it reads (``inputs``; ``""`` marks an absent optional input), the tensors it
writes (``outputs``) and normalised attributes (``attrs``: every default filled in by the
frontend, so kernels never guess). The IR ops and their attributes are documented in
``accelsim/kernels/__init__.py``.

accelsim never imports the frontend: any producer that builds a valid Program (the ONNX
frontend, a test, a user script) can use the simulator.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

from accelsim.errors import UserError


class ProgramError(UserError, ValueError):
    """A Program is malformed (dangling tensor name, duplicate output, bad shape, ...)."""


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, element dtype (numpy name) and shape.

    ``shape`` entries are ints, or strings naming a symbolic dimension (e.g. ``"batch"``).
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class Parameter:
    """One model parameter as the accelerator stores it.

    Attributes:
        name: stable name, e.g. ``"layer1.0.conv1.weight"``.
        shape: element shape (same layout as the ONNX initializer it came from, except where
            the frontend folded BatchNorm into a conv).
        component: component label, e.g. ``"embedding.table3"``, ``"encoder.3.attention.query"``.
        role: ``"weight"``, ``"bias"``, ``"embedding"``, ``"norm_scale"``, ``"norm_bias"`` or
            ``"other"``.
        channel_axis: axis of ``shape`` that indexes output channels (per-channel int8 scales
            are taken along it); ``None`` means one scale for the whole tensor.
        source: where it came from (ONNX initializer name(s)), for traceability.
    """

    name: str
    shape: tuple[int, ...]
    component: str
    role: str = "weight"
    channel_axis: int | None = None
    source: str = ""

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))


def _freeze(attrs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    frozen: dict[str, Any] = {}
    for key, value in (attrs or {}).items():
        if isinstance(value, list):
            value = tuple(value)
        frozen[key] = value
    return MappingProxyType(frozen)


@dataclass(frozen=True)
class Instruction:
    """One IR instruction.

    Attributes:
        op: IR op name (a key of ``accelsim.kernels.KERNELS``).
        name: unique instruction name (the ONNX node name, made unique by the frontend).
        inputs: tensor names read, in the op's operand order; ``""`` marks an absent optional.
        outputs: tensor names written.
        attrs: normalised attributes (read-only mapping; lists become tuples).
    """

    op: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "attrs", _freeze(self.attrs))

    def attr(self, key: str) -> Any:
        """Attribute ``key``; a missing one is an error naming the instruction."""
        try:
            return self.attrs[key]
        except KeyError:
            raise ProgramError(
                f"instruction {self.name!r} (op {self.op}) has no attribute {key!r}"
            ) from None


@dataclass(frozen=True)
class Program:
    """A lowered model: inputs, outputs, parameters with values, constants, instructions.

    ``parameter_values`` maps each parameter name to its fp32 value (numpy array of
    ``Parameter.shape``); these are the golden values and are never modified in place by the
    executor or by fault injection (the arrays are made read-only).
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parameters: Mapping[str, Parameter]
    parameter_values: Mapping[str, np.ndarray]
    constants: Mapping[str, np.ndarray]
    instructions: tuple[Instruction, ...]
    name: str = "model"

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "instructions", tuple(self.instructions))
        for value in list(self.parameter_values.values()) + list(self.constants.values()):
            value.setflags(write=False)
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))
        object.__setattr__(self, "parameter_values", MappingProxyType(dict(self.parameter_values)))
        object.__setattr__(self, "constants", MappingProxyType(dict(self.constants)))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check names: every read tensor is defined before use, no tensor is written twice."""
        defined: set[str] = {spec.name for spec in self.inputs}
        for kind, names in (("parameter", self.parameters), ("constant", self.constants)):
            for name in names:
                if name in defined:
                    raise ProgramError(f"{kind} {name!r} collides with another tensor name")
                defined.add(name)
        for pname, param in self.parameters.items():
            if pname != param.name:
                raise ProgramError(f"parameter key {pname!r} differs from its name {param.name!r}")
            value = self.parameter_values.get(pname)
            if value is None:
                raise ProgramError(f"parameter {pname!r} has no value")
            if tuple(value.shape) != tuple(param.shape) or value.dtype != np.float32:
                raise ProgramError(
                    f"parameter {pname!r}: value is {value.dtype}{list(value.shape)}, "
                    f"expected float32{list(param.shape)}"
                )
        for inst in self.instructions:
            for tensor in inst.inputs:
                if tensor and tensor not in defined:
                    raise ProgramError(
                        f"instruction {inst.name!r} (op {inst.op}) reads undefined tensor {tensor!r}"
                    )
            for tensor in inst.outputs:
                if tensor in defined:
                    raise ProgramError(
                        f"instruction {inst.name!r} (op {inst.op}) rewrites tensor {tensor!r}"
                    )
                defined.add(tensor)
        for spec in self.outputs:
            if spec.name not in defined:
                raise ProgramError(f"graph output {spec.name!r} is never computed")

    # ------------------------------------------------------------------ queries
    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.outputs)

    def op_histogram(self) -> dict[str, int]:
        """IR op name -> number of instructions."""
        counts: dict[str, int] = {}
        for inst in self.instructions:
            counts[inst.op] = counts.get(inst.op, 0) + 1
        return dict(sorted(counts.items()))

    def consumers(self) -> dict[str, list[int]]:
        """Tensor name -> indices of the instructions that read it."""
        readers: dict[str, list[int]] = {}
        for index, inst in enumerate(self.instructions):
            for tensor in inst.inputs:
                if tensor:
                    readers.setdefault(tensor, []).append(index)
        return readers

    def parameters_by_component(self) -> dict[str, list[Parameter]]:
        """Component label -> its parameters, in program order."""
        groups: dict[str, list[Parameter]] = {}
        for param in self.parameters.values():
            groups.setdefault(param.component, []).append(param)
        return groups

    def with_parameter_values(self, values: Mapping[str, np.ndarray]) -> "Program":
        """A copy whose parameter values are replaced by ``values`` (others kept)."""
        merged = dict(self.parameter_values)
        for name, value in values.items():
            if name not in self.parameters:
                raise ProgramError(f"unknown parameter {name!r}")
            merged[name] = np.ascontiguousarray(value, dtype=np.float32)
        return dataclasses.replace(self, parameter_values=merged)


def unique_name(base: str, taken: Iterable[str]) -> str:
    """``base`` if unused, else ``base_1``, ``base_2``, ..."""
    used = set(taken)
    if base not in used:
        return base
    index = 1
    while f"{base}_{index}" in used:
        index += 1
    return f"{base}_{index}"
