"""The golden run every faulty inference starts from (private to :mod:`faults.inject`).

:class:`GoldenRun` runs the program once on the evaluation batch and keeps what resumption
needs within a memory budget:

* always: graph inputs, parameters, constants, tensors independent of the batch and the
  integer shape arithmetic (tiny), the judged output, the outputs of embedding bags (their
  ragged inputs cannot be cut by rows) and of any op the batch-structure probe found not to be
  row exact (:mod:`faults.inject._structure`);
* within ``budget_bytes`` (``None`` = everything): the other batch tensors, first the inputs
  of parameter-reading instructions (what a fault's start instruction and the residual paths
  read), then their outputs (what tells a fault masked at its start), then the rest; a view
  (reshape, transpose, ...) of a kept tensor is kept for free.

A dropped tensor is recomputed on demand for the rows a fault needs (:class:`Rows`), from the
nearest kept tensors, with the same kernels: every kernel is row exact (a row's result does not
depend on the other rows; ``accelsim.kernels.linear``), so the recomputed rows are bit-identical
to the golden ones and the budget never changes a result, only the time.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from accelsim import executor, storage
from accelsim.errors import UserError
from accelsim.ir import Instruction, Program
from accelsim.kernels import KERNELS, parallel

from faults.common.fault_models import Corruption
from faults.common.scales import ScaleCorruption, scaled_values
from faults.inject._structure import Structure, batch_of, probe_rows, probe_run

_VIEW_OPS = {"identity", "reshape", "transpose", "squeeze", "unsqueeze", "flatten", "expand", "slice"}
_SHAPE_OPS = {"shape", "size"}


class OutputError(UserError, ValueError):
    """The judged graph output does not exist (one line)."""


class GoldenRun:
    """Golden cache of ``program`` on ``inputs`` with parameters stored as ``dtype``.

    Attributes:
        tensors: the kept tensors by name (graph inputs, decoded parameters, constants, kept
            activations; module docstring). With ``budget_bytes=None`` every tensor.
        output, output_value: the judged graph output and its golden value [B, ...].
        batch: the evaluation batch B (leading size of the output).
        batch_tensors: tensor -> rows per sample (``k``: leading size B·k).
        separable: faults may run on their own rows (else on the whole batch).
        readers: parameter -> indices of the instructions reading it (program order).
        last_use: tensor -> index of the last instruction reading it.
        producer: tensor -> index of the instruction producing it.
        probability_output: the output is produced by a sigmoid (a CTR, not a logit).
        kept_bytes: bytes of the kept activations (inputs and parameters aside).
        shapes: every tensor's golden shape.
    """

    def __init__(self, program: Program, inputs: Mapping[str, np.ndarray], dtype: str = "fp32",
                 output: str | None = None, budget_bytes: int | None = None) -> None:
        self.program = program
        self.dtype = storage.check_format(dtype)
        self.output = output or program.output_names[0]
        if self.output not in program.output_names:
            raise OutputError(f"unknown graph output {self.output!r}; outputs are {list(program.output_names)}")
        self.instructions: tuple[Instruction, ...] = program.instructions
        env: dict[str, np.ndarray] = dict(program.constants)
        env.update(executor.decoded_parameters(program, self.dtype))
        env.update(executor.check_inputs(program, inputs))
        self.producer = {o: i for i, inst in enumerate(self.instructions) for o in inst.outputs}
        self.last_use: dict[str, int] = {}
        for i, inst in enumerate(self.instructions):
            for name in inst.inputs:
                if name:
                    self.last_use[name] = i
        consumers = program.consumers()
        self.readers = {name: consumers.get(name, []) for name in program.parameters}
        guess = batch_of(program, env)
        self.structure = Structure()
        self._plan_rows = probe_rows(guess) if guess else np.zeros(0, np.int64)
        self.shapes: dict[str, tuple[int, ...]] = {n: np.shape(v) for n, v in env.items()}
        with parallel.compute_threads():  # one BLAS thread per call, as every recomputation
            probe = probe_run(program, env, guess) if guess else None
            keep = self._plan(probe, guess, budget_bytes)
            self.tensors = self._run(dict(env), probe, guess, keep)
            if keep is not None and (self.structure.inexact or self.output not in self.structure.factor):
                self.tensors = self._run(dict(env), None, guess, None)  # not row separable: keep all
        self.output_value = self.tensors[self.output]
        self.batch = int(self.output_value.shape[0]) if np.ndim(self.output_value) else 1
        st = self.structure
        self.separable = bool(probe is not None and guess == self.batch and not st.inexact
                              and self.output in st.factor)
        if not self.separable:  # whole-batch mode: every tensor is kept
            st.factor = {n: 1 for n, v in self.tensors.items() if n not in program.parameters
                         and n not in program.constants and np.ndim(v) and np.shape(v)[0] == self.batch}
            st.meta = set()
        self.batch_tensors = st.factor
        self.kept_bytes = sum(int(np.asarray(v).nbytes) for n, v in self.tensors.items()
                              if n in self.producer and getattr(v, "base", None) is None)
        self.probability_output = any(inst.op == "sigmoid" for inst in self.instructions
                                      if self.output in inst.outputs)
        self._stored: dict[str, storage.StoredTensor] = {}
        self._bags: dict = {}
        self.stackable: dict[int, bool] = {}  # start instruction -> ran on its own rows

    # ------------------------------------------------------------------ the run
    def _plan(self, probe, batch, budget) -> set[str] | None:
        """Names of the activations to keep (None = all), from the probe's sizes."""
        if probe is None or budget is None:
            return None
        scale = batch / max(self._plan_rows.size, 1)
        params = set(self.program.parameters)
        keep = {self.output}
        ranked: list[list[str]] = [[], [], []]
        feeds = {n for inst in self.instructions if any(x in params for x in inst.inputs)
                 for n in inst.inputs if n in self.producer}
        for inst in self.instructions:
            reads_param = any(n in params for n in inst.inputs)
            for name in inst.outputs:
                if inst.op == "embedding_bag" or np.asarray(probe[name]).dtype.kind != "f":
                    keep.add(name)
                elif inst.op not in _VIEW_OPS:
                    ranked[0 if name in feeds else 1 if reads_param else 2].append(name)
        total = 0
        for name in ranked[0] + ranked[1] + ranked[2]:
            size = int(np.asarray(probe[name]).nbytes * scale)
            if total + size <= budget:
                keep.add(name)
                total += size
        base_kept = set(self.program.input_names) | params | set(self.program.constants)
        for inst in self.instructions:  # a view is free when its base is kept, else dropped
            if inst.op in _VIEW_OPS and (inst.inputs[0] in keep or inst.inputs[0] in base_kept):
                keep.update(inst.outputs)
        return keep

    def _run(self, env: dict[str, np.ndarray], probe, batch, keep: set[str] | None) -> dict[str, np.ndarray]:
        """Execute the program on the whole batch, classifying each tensor and dropping the
        batch tensors outside ``keep`` after their last use."""
        st, rows = self.structure, self._plan_rows
        if probe is not None:
            for name in self.program.input_names:
                st.classify(name, env[name], probe.get(name), batch, rows)
        protected = set(self.program.input_names) | set(self.program.parameters) | set(self.program.constants)
        with np.errstate(all="ignore"):
            for index, inst in enumerate(self.instructions):
                args = [env[n] if n else None for n in inst.inputs]
                try:
                    outs = KERNELS[inst.op](inst, args)
                except Exception as exc:  # one line naming the failing instruction
                    shapes = [None if a is None else list(np.shape(a)) for a in args]
                    raise executor.ExecutionError(
                        f"instruction {inst.name!r} (op {inst.op}, input shapes {shapes}) failed: "
                        f"{type(exc).__name__}: {exc}") from exc
                for name, value in zip(inst.outputs, outs):
                    env[name] = value
                    self.shapes[name] = np.shape(value)
                    if probe is not None:
                        st.classify(name, value, probe.get(name), batch, rows)
                if keep is not None:
                    for name in inst.inputs:
                        if name and name not in protected and self.last_use.get(name) == index \
                                and not self._must_keep(name, keep):
                            env.pop(name, None)
        if keep is not None:
            for name in [n for n in env if n in self.producer and not self._must_keep(n, keep)]:
                del env[name]
            for name in [n for n in env if n in self.producer and n in st.factor
                         and self.instructions[self.producer[n]].op in _VIEW_OPS and not _owns(env, n)]:
                del env[name]  # a view whose base was dropped would keep the whole base alive
        return env

    def _must_keep(self, name: str, keep: set[str]) -> bool:
        st = self.structure
        return name in keep or name not in st.factor or name in st.inexact

    # ------------------------------------------------------------------ parameters
    def stored(self, name: str) -> storage.StoredTensor:
        """Parameter ``name`` as stored in this run's format (cached)."""
        tensor = self._stored.get(name)
        if tensor is None:
            param = self.program.parameters[name]
            tensor = storage.encode(self.program.parameter_values[name], self.dtype, param.channel_axis)
            self._stored[name] = tensor
        return tensor

    def corrupted_values(self, param: str, corruption: Corruption) -> tuple[np.ndarray, np.ndarray]:
        """(new, old) fp32 values of the corrupted elements ``corruption.index`` of ``param``
        (a :class:`ScaleCorruption` changes the scales of their channels, not their bits)."""
        st = self.stored(param)
        if isinstance(corruption, ScaleCorruption):
            spec = self.program.parameters[param]
            new = scaled_values(st, spec.shape, spec.channel_axis, corruption)
            return new, self.tensors[param].reshape(-1)[corruption.index].astype(np.float32)
        if st.scales is not None:
            scales = np.broadcast_to(st.scales, st.bits.shape).reshape(-1)[corruption.index]
        else:
            scales = None
        new = storage.decode_bits(st.fmt, corruption.new_bits, scales).astype(np.float32)
        old = self.tensors[param].reshape(-1)[corruption.index].astype(np.float32)
        return new, old

    def with_elements(self, param: str, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Full fp32 value of ``param`` with the flat elements ``index`` set to ``values`` (a copy)."""
        value = np.array(self.tensors[param], dtype=np.float32, copy=True)
        value.reshape(-1)[index] = values
        return value

    def start_index(self, param: str) -> int:
        """Index of the first instruction that reads ``param``."""
        readers = self.readers.get(param)
        if not readers:
            raise KeyError(f"parameter {param!r} is never read")
        return readers[0]

    # ------------------------------------------------------------------ activations
    def output_rows(self, rows: np.ndarray) -> np.ndarray:
        """Golden graph output on ``rows`` (a copy)."""
        return np.asarray(self.output_value)[rows].copy()

    def bag_layout(self, inst: Instruction):
        """(indices, bag of each index position, bag lengths, per-sample weights) of an
        embedding_bag instruction, or None when its bags are not one per batch row."""
        if inst.name in self._bags:
            return self._bags[inst.name]
        bounds = self.bag_bounds(inst)
        layout = None
        if bounds is not None:
            indices, starts, ends, weights = bounds
            size = indices.size
            bag_of = np.full(size, -1, dtype=np.int64)
            for b in range(starts.size):  # once per instruction
                bag_of[starts[b]:ends[b]] = b
            covered = bag_of >= 0
            weights = None if weights is None else weights.astype(np.float64)
            if not covered.all():  # positions outside every bag never contribute
                indices = np.where(covered, indices, -1)
                bag_of = np.where(covered, bag_of, 0)
            layout = (indices, bag_of, (ends - starts).astype(np.float64), weights)
        self._bags[inst.name] = layout
        return layout

    def bag_bounds(self, inst: Instruction):
        """(indices made non-negative, bag starts, bag ends, per-sample weights or None) of an
        embedding_bag whose bags are one per batch row, else None."""
        key = ("bounds", inst.name)
        if key in self._bags:
            return self._bags[key]
        ind_name, off_name = inst.inputs[1], inst.inputs[2]
        psw_name = inst.inputs[3] if len(inst.inputs) > 3 else ""
        found = None
        if all(n in self.tensors for n in (ind_name, off_name)) and (not psw_name or psw_name in self.tensors):
            indices = np.asarray(self.tensors[ind_name]).reshape(-1).astype(np.int64)
            offsets = np.asarray(self.tensors[off_name]).reshape(-1).astype(np.int64)
            nrows = self.program.parameters[inst.inputs[0]].shape[0]
            indices = np.where(indices < 0, indices + nrows, indices)
            last = bool(inst.attrs.get("include_last_offset", False))
            nbags = offsets.size - int(last)
            if nbags == self.batch:
                size = indices.size
                starts = np.clip(offsets[:nbags], 0, size)
                ends = np.clip(offsets[1:nbags + 1] if last else np.append(offsets[1:], size), 0, size)
                ends = np.maximum(ends, starts)
                weights = np.asarray(self.tensors[psw_name]).reshape(-1) if psw_name else None
                found = (indices, starts, ends, weights)
        self._bags[key] = found
        return found


def _owns(env: Mapping[str, np.ndarray], name: str) -> bool:
    """Does ``env[name]`` own its memory (or view a kept tensor)?"""
    value = env[name]
    base = getattr(value, "base", None)
    if base is None:
        return True
    return any(v is base or getattr(v, "base", None) is base for n, v in env.items() if n != name)


class Rows:
    """Golden values on a stacked batch ``rows`` (B indices, repeats allowed): kept tensors are
    indexed, dropped ones recomputed from the nearest kept ones, shape arithmetic recomputed
    for the stacked size (memoised for the life of this object)."""

    def __init__(self, gold: GoldenRun, rows: np.ndarray) -> None:
        self.gold = gold
        self.rows = np.asarray(rows, dtype=np.int64)
        self.identity = self.rows.size == gold.batch and bool(np.array_equal(self.rows, np.arange(gold.batch)))
        self._index: dict[int, np.ndarray] = {}
        self._memo: dict[str, np.ndarray] = {}

    def index(self, k: int) -> np.ndarray:
        idx = self._index.get(k)
        if idx is None:
            idx = self.rows if k == 1 else (self.rows[:, None] * k + np.arange(k)).reshape(-1)
            self._index[k] = idx
        return idx

    def value(self, name: str) -> np.ndarray:
        """``name`` as the stacked batch sees it (batch rows, meta for its size, or static)."""
        gold = self.gold
        if name in gold.batch_tensors:
            return self.golden(name)
        if name in gold.structure.meta and not self.identity:
            return self._recompute(name)
        return gold.tensors[name]

    def kept(self, name: str) -> np.ndarray | None:
        """Golden rows of batch tensor ``name`` if kept (no recomputation), else None."""
        value = self.gold.tensors.get(name)
        if value is None:
            return self._memo.get(name)
        k = self.gold.batch_tensors.get(name, 1)
        return value if self.identity else value[self.index(k)]

    def golden(self, name: str) -> np.ndarray:
        """Golden rows of batch tensor ``name`` (the whole tensor if not batch-major)."""
        gold = self.gold
        k = gold.batch_tensors.get(name)
        if k is None:
            return self.value(name)
        value = gold.tensors.get(name)
        if value is not None:
            return value if self.identity else value[self.index(k)]
        return self._recompute(name)

    def _recompute(self, name: str) -> np.ndarray:
        found = self._memo.get(name)
        if found is not None:
            return found
        gold = self.gold
        inst = gold.instructions[gold.producer[name]]
        args = []
        for n in inst.inputs:
            if not n:
                args.append(None)
            elif inst.op in _SHAPE_OPS and n in gold.batch_tensors:  # only the shape is read
                k = gold.batch_tensors[n]
                shape = (self.rows.size * k,) + tuple(gold.shapes[n][1:])
                args.append(np.broadcast_to(np.zeros((), np.float32), shape))
            else:
                args.append(self.value(n))
        with np.errstate(all="ignore"):
            outs = KERNELS[inst.op](inst, args)
        for o, v in zip(inst.outputs, outs):
            self._memo[o] = v
        return self._memo[name]
