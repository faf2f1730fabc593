"""The golden run every faulty inference starts from (private to :mod:`faults.inject`).

:class:`GoldenRun` runs the program once on the evaluation batch with every intermediate
tensor kept, and derives what propagation needs: which tensors carry the batch on axis 0,
which instruction reads each parameter, where each tensor is last used, the stored bits of
each parameter (cached), and the layout of embedding bags.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from accelsim import executor, storage
from accelsim.errors import UserError
from accelsim.ir import Instruction, Program

from faults.common.fault_models import Corruption


class OutputError(UserError, ValueError):
    """The judged graph output does not exist (one line)."""


class GoldenRun:
    """Golden cache of ``program`` on ``inputs`` with parameters stored as ``dtype``.

    Attributes:
        tensors: every tensor of the golden run by name (graph inputs, parameters as decoded
            from ``dtype``, constants, instruction outputs).
        output: the graph output faults are judged on; ``output_value`` its golden value.
        batch: the evaluation batch (leading size of ``output_value``).
        batch_tensors: names of tensors whose leading axis is the batch.
        readers: parameter -> indices of the instructions reading it (program order).
        last_use: tensor -> index of the last instruction reading it.
        probability_output: the output is produced by a sigmoid (a CTR, not a logit).
    """

    def __init__(self, program: Program, inputs: Mapping[str, np.ndarray], dtype: str = "fp32",
                 output: str | None = None) -> None:
        self.program = program
        self.dtype = storage.check_format(dtype)
        self.output = output or program.output_names[0]
        if self.output not in program.output_names:
            raise OutputError(f"unknown graph output {self.output!r}; outputs are {list(program.output_names)}")
        result = executor.run(program, inputs, dtype=dtype, keep_intermediates=True)
        self.tensors: dict[str, np.ndarray] = result.cache or {}
        self.output_value = self.tensors[self.output]
        # the evaluation batch is the output's leading axis (inputs may be ragged, e.g. bag offsets)
        self.batch = int(self.output_value.shape[0]) if np.ndim(self.output_value) else 1
        self.instructions: tuple[Instruction, ...] = program.instructions
        consumers = program.consumers()
        self.readers = {name: consumers.get(name, []) for name in program.parameters}
        producers = {o for inst in self.instructions for o in inst.outputs}
        self.last_use: dict[str, int] = {}
        for i, inst in enumerate(self.instructions):
            for name in inst.inputs:
                if name:
                    self.last_use[name] = i
        activations = set(program.input_names) | producers
        self.batch_tensors = {
            name for name in activations
            if name in self.tensors and np.ndim(self.tensors[name]) >= 1
            and np.shape(self.tensors[name])[0] == self.batch
        }
        self.probability_output = any(inst.op == "sigmoid" for inst in self.instructions
                                      if self.output in inst.outputs)
        self._stored: dict[str, storage.StoredTensor] = {}
        self._bags: dict[str, tuple | None] = {}
        self.stackable: dict[int, bool] = {}  # start instruction -> stacking probe verdict

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
        """(new, old) fp32 values of the corrupted elements ``corruption.index`` of ``param``."""
        st = self.stored(param)
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
    def rows_of(self, name: str, rows: np.ndarray | None) -> np.ndarray:
        """Golden tensor ``name`` on the batch ``rows`` (the whole tensor if not batch-major)."""
        value = self.tensors[name]
        if rows is None or name not in self.batch_tensors:
            return value
        return value[rows]

    def output_rows(self, rows: np.ndarray) -> np.ndarray:
        """Golden graph output on ``rows`` (a copy)."""
        return np.asarray(self.output_value)[rows].copy()

    def bag_layout(self, inst: Instruction):
        """(indices, bag of each index position, bag lengths, per-sample weights) of an
        embedding_bag instruction, or None when its bags are not one per batch row."""
        if inst.name in self._bags:
            return self._bags[inst.name]
        ind_name, off_name = inst.inputs[1], inst.inputs[2]
        psw_name = inst.inputs[3] if len(inst.inputs) > 3 else ""
        indices = np.asarray(self.tensors[ind_name]).reshape(-1).astype(np.int64)
        offsets = np.asarray(self.tensors[off_name]).reshape(-1).astype(np.int64)
        nrows = self.program.parameters[inst.inputs[0]].shape[0]
        indices = np.where(indices < 0, indices + nrows, indices)
        last = bool(inst.attrs.get("include_last_offset", False))
        nbags = offsets.size - int(last)
        layout = None
        if nbags == self.batch:
            size = indices.size
            starts = np.clip(offsets[:nbags], 0, size)
            ends = np.clip(offsets[1:nbags + 1] if last else np.append(offsets[1:], size), 0, size)
            ends = np.maximum(ends, starts)
            lengths = (ends - starts).astype(np.float64)
            bag_of = np.full(size, -1, dtype=np.int64)
            for b in range(nbags):  # once per instruction
                bag_of[starts[b]:ends[b]] = b
            covered = bag_of >= 0
            weights = np.asarray(self.tensors[psw_name]).reshape(-1).astype(np.float64) if psw_name else None
            if not covered.all():  # positions outside every bag never contribute
                indices = np.where(covered, indices, -1)
                bag_of = np.where(covered, bag_of, 0)
            layout = (indices, bag_of, lengths, weights)
        self._bags[inst.name] = layout
        return layout
