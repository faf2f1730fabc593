"""The faulty outputs of the first instruction reading a corrupted parameter, on a fault's rows
(private to :mod:`faults.inject`).

The instruction is recomputed with the executor's own kernel, on the fault's rows only, with
the corrupted parameter in place of the golden one — no separate arithmetic, so the result is
bit-identical to the same rows of a full re-run (kernels are row exact):

* any op: its batch operands are the golden rows (``ctx``), its other operands as in the
  golden run;
* gather (axis 0) of a table: the same, after a check that the fault's rows look the
  corrupted table row up at all (else the golden rows are returned without a kernel call);
* embedding_bag: the bags of the fault's rows only (*bag subsetting*: their index ranges cut
  out of the ragged index array, offsets rebuilt), same kernel, same per-bag summation order.
"""
from __future__ import annotations

import numpy as np

from accelsim.ir import Instruction
from accelsim.kernels import KERNELS
from accelsim.kernels.embedding import embedding_bag_values

from faults.inject._golden import GoldenRun


def start_outputs(gold: GoldenRun, inst: Instruction, param: str, value: np.ndarray, ctx,
                  index: np.ndarray) -> list[np.ndarray] | None:
    """Outputs of ``inst`` on ``ctx.rows`` with ``param`` replaced by ``value`` (fp32, the
    parameter's shape; ``index``: its corrupted flat elements), or None when they are known
    to be the golden ones without computing them. ``ctx`` gives golden rows (``golden``) and
    operand values (``value``)."""
    if inst.op == "embedding_bag" and inst.inputs[0] == param:
        layout = gold.bag_bounds(inst)
        if layout is not None:
            return [_bags(inst, layout, value, ctx.rows)]
    if inst.op == "gather" and inst.inputs[0] == param and int(inst.attrs.get("axis", 0)) == 0 \
            and len(inst.outputs) == 1:
        touched = np.asarray(index) // max(1, int(np.prod(value.shape[1:], dtype=np.int64)))
        idx = np.asarray(ctx.value(inst.inputs[1]))
        if inst.outputs[0] in gold.batch_tensors and not any(
                bool(((idx == r) | (idx == r - value.shape[0])).any()) for r in set(touched.tolist())):
            return None  # no looked-up row is corrupted: the golden rows
    args = [None if not n else value if n == param else ctx.value(n) for n in inst.inputs]
    outs = list(KERNELS[inst.op](inst, args))
    if inst.op == "embedding_bag":  # ragged operands are whole: keep the fault's bags
        outs = [o[ctx.rows] if np.ndim(o) and np.shape(o)[0] == gold.batch else o for o in outs]
    return outs


def _bags(inst: Instruction, layout, table: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """embedding_bag of ``table`` on the bags ``rows`` only: [rows, D]."""
    indices, starts, ends, weights = layout
    lengths = ends[rows] - starts[rows]
    offsets = np.zeros(rows.size, dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    take = np.concatenate([np.arange(s, e) for s, e in zip(starts[rows], ends[rows])]) if rows.size \
        else np.zeros(0, np.int64)
    return embedding_bag_values(
        table, indices[take], offsets, None if weights is None else weights[take],
        mode=inst.attrs["mode"], include_last_offset=False, empty_value=float(inst.attrs["empty_value"]),
    )
