"""Functional (golden) execution of an IR program on numpy arrays.

``run`` executes every instruction in order with the kernels of ``accelsim.kernels``.
Parameters are first stored in the chosen format (``accelsim.storage``) and decoded to fp32
for compute, so an fp16/bf16/int8 run sees exactly the values the accelerator would hold.

With ``keep_intermediates=True`` the result carries the golden cache: every tensor of the
run by name. ``resume`` re-executes a program from instruction ``start`` with some tensors
replaced, reading everything else from a cache — the basis of fast fault injection.

Inputs are validated first and every instruction's operand values before its kernel
(:mod:`accelsim.checks`): what the inputs get wrong is a one-line user error naming the input
or instruction; a kernel that fails after that is a bug (:class:`ExecutionError`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from accelsim import storage
from accelsim.checks import InputDataError, check_args, check_inputs
from accelsim.ir import Program, ProgramError
from accelsim.kernels import KERNELS, parallel

__all__ = ["ExecutionError", "InputDataError", "RunResult", "check_inputs", "decoded_parameters", "run", "resume"]


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


def run(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    *,
    dtype: str = "fp32",
    parameter_values: Mapping[str, np.ndarray] | None = None,
    keep_intermediates: bool = False,
    threads: int | None = None,
) -> RunResult:
    """Run ``program`` on ``inputs`` (graph input name -> array, leading axis = batch).

    Args:
        dtype: parameter storage format (fp32, fp16, bf16, int8); ignored for parameters given
            in ``parameter_values``.
        parameter_values: fp32 values that replace the stored-and-decoded ones (e.g. a
            corrupted parameter); the program itself is never modified.
        keep_intermediates: keep every tensor (the golden cache) in ``RunResult.cache``.
        threads: kernel threads (default: the cores this process may use, or 1 inside a
            campaign worker); BLAS runs one thread per call, kernels split independent samples
            (``accelsim.kernels.parallel``), so the result is the same for any thread count.
    """
    env: dict[str, np.ndarray] = dict(program.constants)
    env.update(decoded_parameters(program, dtype))
    if parameter_values:
        for name, value in parameter_values.items():
            if name not in program.parameters:
                raise ProgramError(f"unknown parameter {name!r}")
            env[name] = value
    env.update(check_inputs(program, inputs))
    with parallel.compute_threads(threads):
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
        check_args(inst, args)  # values a kernel cannot use are the input's fault: one line
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
