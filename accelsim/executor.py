"""Functional (golden) execution of an IR program on numpy arrays.

``run`` executes every instruction in order with the kernels of ``accelsim.kernels``.
Parameters are first stored in the chosen format (``accelsim.storage``) and decoded to fp32
for compute, so an fp16/bf16/int8 run sees exactly the values the accelerator would hold.

With ``keep_intermediates=True`` the result carries the golden cache: every tensor of the
run by name. ``resume`` re-executes a program from instruction ``start`` with some tensors
replaced, reading everything else from a cache — the basis of fast fault injection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from accelsim import storage
from accelsim.ir import Program, ProgramError
from accelsim.kernels import KERNELS


class ExecutionError(RuntimeError):
    """An instruction failed; the message names the instruction and op."""


@dataclass(frozen=True)
class RunResult:
    """Outputs of one run (graph output name -> array) and, if kept, every tensor by name."""

    outputs: dict[str, np.ndarray]
    cache: dict[str, np.ndarray] | None = None


def decoded_parameters(program: Program, fmt: str = "fp32") -> dict[str, np.ndarray]:
    """Parameter name -> fp32 value as compute sees it after storage in ``fmt``."""
    storage.check_format(fmt)
    if fmt == "fp32":
        return dict(program.parameter_values)
    axes = {name: p.channel_axis for name, p in program.parameters.items()}
    stored = storage.store_parameters(program.parameter_values, axes, fmt)
    return {name: tensor.decode() for name, tensor in stored.items()}


def check_inputs(program: Program, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate graph inputs by name, rank and fixed dims; return them as arrays."""
    missing = [spec.name for spec in program.inputs if spec.name not in inputs]
    if missing:
        raise ProgramError(f"missing graph input(s): {', '.join(missing)}")
    extra = sorted(set(inputs) - set(program.input_names))
    if extra:
        raise ProgramError(
            f"unknown input(s) {', '.join(extra)}; the graph takes {', '.join(program.input_names)}"
        )
    arrays: dict[str, np.ndarray] = {}
    for spec in program.inputs:
        array = np.asarray(inputs[spec.name])
        if array.ndim != len(spec.shape) or any(
            isinstance(dim, int) and dim != size for dim, size in zip(spec.shape, array.shape)
        ):
            raise ProgramError(
                f"input {spec.name!r} has shape {list(array.shape)}, graph expects {list(spec.shape)}"
            )
        if np.dtype(spec.dtype).kind == "f":
            array = array.astype(np.float32, copy=False)
        else:
            array = array.astype(spec.dtype, copy=False)
        arrays[spec.name] = array
    return arrays


def run(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    *,
    dtype: str = "fp32",
    parameter_values: Mapping[str, np.ndarray] | None = None,
    keep_intermediates: bool = False,
) -> RunResult:
    """Run ``program`` on ``inputs`` (graph input name -> array, leading axis = batch).

    Args:
        dtype: parameter storage format (fp32, fp16, bf16, int8); ignored for parameters given
            in ``parameter_values``.
        parameter_values: fp32 values that replace the stored-and-decoded ones (e.g. a
            corrupted parameter); the program itself is never modified.
        keep_intermediates: keep every tensor (the golden cache) in ``RunResult.cache``.
    """
    env: dict[str, np.ndarray] = dict(program.constants)
    env.update(decoded_parameters(program, dtype))
    if parameter_values:
        for name, value in parameter_values.items():
            if name not in program.parameters:
                raise ProgramError(f"unknown parameter {name!r}")
            env[name] = value
    env.update(check_inputs(program, inputs))
    return _execute(program, env, 0, keep_intermediates)


def resume(
    program: Program,
    cache: Mapping[str, np.ndarray],
    start: int,
    replaced: Mapping[str, np.ndarray],
    *,
    stop: int | None = None,
    keep_intermediates: bool = False,
) -> RunResult:
    """Re-run instructions ``start`` .. ``stop-1`` reading unchanged tensors from ``cache``.

    ``replaced`` overrides tensors (parameters or activations) by name. Tensors produced at
    or after ``start`` are recomputed; everything else comes from ``cache`` (a golden cache
    from ``run(..., keep_intermediates=True)``). Batch sizes may differ from the cache's as
    long as every tensor the resumed part reads broadcasts (e.g. stacked faulty batches).
    """
    env = dict(cache)
    env.update(replaced)
    return _execute(program, env, start, keep_intermediates, stop)


def _execute(*args, **kwargs) -> RunResult:
    # Faulty parameters legitimately produce inf/NaN; outcomes classify them (DUE), so
    # numpy's floating-point warnings are noise here.
    with np.errstate(all="ignore"):
        return _execute_instructions(*args, **kwargs)


def _execute_instructions(
    program: Program,
    env: dict[str, np.ndarray],
    start: int,
    keep_intermediates: bool,
    stop: int | None = None,
) -> RunResult:
    instructions = program.instructions
    stop = len(instructions) if stop is None else stop
    last_use: dict[str, int] = {}
    if not keep_intermediates:
        protected = set(program.output_names) | set(program.parameters) | set(program.constants)
        for index in range(start, stop):
            for tensor in instructions[index].inputs:
                if tensor and tensor not in protected:
                    last_use[tensor] = index
    for index in range(start, stop):
        inst = instructions[index]
        fn = KERNELS.get(inst.op)
        if fn is None:
            raise ExecutionError(f"instruction {inst.name!r}: no kernel for IR op {inst.op!r}")
        args = [env[name] if name else None for name in inst.inputs]
        try:
            results = fn(inst, args)
        except (ExecutionError, ProgramError):
            raise
        except Exception as exc:  # one line naming the failing instruction
            shapes = [None if a is None else list(np.shape(a)) for a in args]
            raise ExecutionError(
                f"instruction {inst.name!r} (op {inst.op}, input shapes {shapes}) failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for name, value in zip(inst.outputs, results):
            env[name] = value
        if not keep_intermediates:
            for tensor in inst.inputs:
                if tensor and last_use.get(tensor) == index:
                    env.pop(tensor, None)
    outputs = {name: env[name] for name in program.output_names}
    return RunResult(outputs=outputs, cache=env if keep_intermediates else None)
