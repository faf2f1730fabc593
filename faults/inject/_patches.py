"""Local patches of one instruction's output for reads that see a corrupted element (private
to :mod:`faults.inject`; used by :mod:`faults.inject.partial`).

``out`` is the instruction's first output on the full batch (a copy, patched in place); a use
(:class:`~faults.inject.partial.Use`) names the GEMM-view rows / lookups that read the element.
Sums are taken in float64 and rounded once to fp32.

* ``weight`` ``B_g[k, n]`` in rows m: ``Y[m, n] += alpha · A[m, k] · Δw`` (conv: the input
  value under the kernel tap, zero in the padding);
* ``bias`` in rows m: ``Y[m, n] += beta · Δb``;
* ``scale`` (an int8 weight's scale of column n) in rows m: ``Y[m, n] += (s'/s − 1)·acc[m, n]``
  with ``acc`` the golden accumulation ``Y − beta·C`` (the bias part is not scaled);
  ``bias_scale`` (the int8 bias's scale): ``Y[m, n] += (s'/s − 1)·beta·C[n]``;
* ``lookup`` of embedding element n at lookup j: the gathered value is the new one (bags: the
  bag's sum moves by the lookup's weight × Δ); ``lookup_scale`` (the looked-up row's scale):
  the whole row decodes with the new scale.
"""
from __future__ import annotations

import numpy as np

from accelsim.schedule.workload import GatherWork, GemmWork


class PatchError(ValueError):
    """A partial corruption the patches cannot express (raised as a user-facing error upstream)."""


def _add(out: np.ndarray, index, add: np.ndarray) -> None:
    out[index] = (out[index].astype(np.float64) + add).astype(out.dtype)


def gemm_patch(inst, work: GemmWork, use, out: np.ndarray, get, golden_out: np.ndarray, bias_value,
               new: float, old: float) -> None:
    """Apply a weight / bias / scale / bias_scale use of a gemm or a 2-D-weight matmul."""
    finite = bool(np.isfinite(new))
    d = np.float64(new) - np.float64(old)
    m = use.rows
    if work.op == "gemm":
        alpha, beta = float(inst.attr("alpha")), float(inst.attr("beta"))
        flat, flat_golden = out, golden_out
    else:
        if work.groups != 1:
            raise PatchError(f"op {work.name!r}: partial corruption of a batched matmul weight")
        alpha, beta = 1.0, 1.0
        flat, flat_golden = out.reshape(-1, work.n), golden_out.reshape(-1, work.n)
    if use.kind == "weight":
        a = np.asarray(get(inst.inputs[0]))
        a = (a.T if inst.attr("trans_a") else a) if work.op == "gemm" else a.reshape(-1, work.k)
        col = a[m, use.k].astype(np.float64)
        add = alpha * (col * d if finite else col * np.float64(new) - col * np.float64(old))
    elif use.kind == "bias":
        add = np.full(m.size, beta * d if finite else np.float64(new) - np.float64(old))
    elif use.kind == "scale":
        bias = beta * np.float64(np.asarray(bias_value).reshape(-1)[use.n]) if bias_value is not None else 0.0
        acc = flat_golden[m, use.n].astype(np.float64) - bias
        add = (np.float64(new) / np.float64(old) - 1.0) * acc
    elif use.kind == "bias_scale":
        c = np.float64(np.asarray(bias_value).reshape(-1)[use.n])
        add = np.full(m.size, (np.float64(new) / np.float64(old) - 1.0) * beta * c)
    else:
        raise PatchError(f"op {work.name!r}: unknown use {use.kind!r}")
    _add(flat, (m, np.full(m.size, use.n)), add)


def conv_patch(inst, work: GemmWork, use, out: np.ndarray, get, golden_out: np.ndarray, bias_value,
               w_shape: tuple, new: float, old: float) -> None:
    """Apply a weight / bias / scale / bias_scale use of a conv (GEMM rows = sample × position)."""
    osp = out.shape[2:]
    per = int(np.prod(osp))
    b, p = np.divmod(use.rows, per)
    opos = np.unravel_index(p, osp)
    o = use.g * work.n + use.n
    index = (b, np.full(b.size, o)) + tuple(opos)
    finite = bool(np.isfinite(new))
    d = np.float64(new) - np.float64(old)
    if use.kind == "bias":
        add = np.full(b.size, d)
    elif use.kind == "scale":
        bias = np.float64(np.asarray(bias_value).reshape(-1)[o]) if bias_value is not None else 0.0
        add = (np.float64(new) / np.float64(old) - 1.0) * (golden_out[index].astype(np.float64) - bias)
    elif use.kind == "bias_scale":
        add = np.full(b.size, (np.float64(new) / np.float64(old) - 1.0) * np.float64(np.asarray(bias_value).reshape(-1)[o]))
    elif use.kind == "weight":
        x = np.asarray(get(inst.inputs[0]))
        kpos = np.unravel_index(use.k, tuple(w_shape[1:]))
        c_in = use.g * w_shape[1] + int(kpos[0])
        strides, pads, dil = inst.attr("strides"), inst.attr("pads"), inst.attr("dilations")
        a = np.zeros(b.size, dtype=np.float64)
        pos, ok = [], np.ones(b.size, dtype=bool)
        for ax in range(len(osp)):
            q = opos[ax] * strides[ax] + int(kpos[1 + ax]) * dil[ax] - pads[ax]
            ok &= (q >= 0) & (q < x.shape[2 + ax])
            pos.append(np.clip(q, 0, x.shape[2 + ax] - 1))
        a[ok] = x[(b, np.full(b.size, c_in)) + tuple(pos)][ok]
        add = a * d if finite else a * np.float64(new) - a * np.float64(old)
    else:
        raise PatchError(f"op {work.name!r}: unknown use {use.kind!r}")
    _add(out, index, add)


def lookup_patch(inst, work: GatherWork, use, out: np.ndarray, get, new_row: np.ndarray,
                 old_row: np.ndarray) -> None:
    """Lookups ``use.rows`` of one table row see ``new_row`` instead of ``old_row`` (fp32 [D])."""
    changed = np.flatnonzero(new_row.view(np.uint32) != old_row.view(np.uint32))
    if inst.op == "gather":
        flat = out.reshape(-1, work.dim)
        flat[np.ix_(use.rows, changed)] = new_row[changed]
        return
    if inst.op != "embedding_bag" or inst.attr("mode") not in ("sum", "mean"):
        raise PatchError(f"op {work.name!r}: partial corruption of a {inst.op} lookup is not supported")
    indices = np.asarray(get(inst.inputs[1])).reshape(-1)
    offsets = np.asarray(get(inst.inputs[2])).reshape(-1).astype(np.int64)
    last = bool(inst.attr("include_last_offset"))
    nbags = offsets.size - int(last)
    ends = offsets[1:nbags + 1] if last else np.append(offsets[1:], indices.size)
    psw = np.asarray(get(inst.inputs[3])).reshape(-1) if len(inst.inputs) > 3 and inst.inputs[3] else None
    delta = new_row.astype(np.float64) - old_row.astype(np.float64)
    for j in use.rows:
        bag = int(np.searchsorted(offsets[:nbags], j, side="right") - 1)
        weight = float(psw[j]) if psw is not None else 1.0
        if inst.attr("mode") == "mean":
            weight /= max(1, int(ends[bag] - offsets[bag]))
        out[bag, changed] = (out[bag, changed].astype(np.float64) + weight * delta[changed]).astype(out.dtype)
