"""Private Numba loops of the schedule, each with a slow readable pure-Python twin.

Only plain numpy int64 arrays go in and out, so the memory model (``timeline``) and the array
model (``expand_folds``) can change independently. The public wrappers validate their inputs;
the ``*_nb`` kernels trust them; the ``*_py`` twins are what the tests compare against.

Timeline model (one HBM DMA queue, requests served one at a time in issue order):

* the loads of step i+1 are issued right after step i is placed (prefetch), in the order
  weight, embedding, activation; a load goes into the next slot of its buffer (slots alternate)
  and may start once the queue is free and that slot is released (the compute end of the last
  step that used it); it takes ``*_cycles[i]`` (latency + bytes / bandwidth);
* then the writeback of step i (if it finishes an output tile) is issued, ready at the compute
  end of step i; an output slot is released when its writeback ends;
* the activation load of a step that starts a new op (``barrier``) is issued after that
  writeback and also waits for every earlier writeback (it may read the previous op's output);
* step i computes from max(compute end of step i−1, its loads done, its output slot free) for
  ``compute[i]`` cycles. Any gap after step i−1 is a stall.
"""
from __future__ import annotations

import numpy as np
from numba import njit

TIMELINE_COLUMNS = ("w_start", "w_end", "w_slot", "a_start", "a_end", "a_slot", "e_start",
                    "e_end", "e_slot", "c_start", "c_end", "wb_start", "wb_end", "o_slot")
FOLD_COLUMNS = ("step", "g", "m0", "m1", "k0", "k1", "n0", "n1", "start")


@njit(cache=True)
def _timeline_nb(w_cyc, a_cyc, e_cyc, wb_cyc, compute, out_first, out_last, barrier,
                 w_use, a_use, e_use, slots, out):  # pragma: no cover - compiled
    n = w_cyc.shape[0]
    rel = np.zeros((4, 2), dtype=np.int64)  # per buffer (w, a, e, o), per slot: release time
    cur = np.full(4, -1, dtype=np.int64)
    cur[:] = slots - 1
    q = 0
    last_wb = 0
    prev_end = 0
    for j in range(n + 1):
        # place step j-1's writeback and step j's loads (j == 0: only the loads)
        i = j - 1
        for phase in range(2):
            if phase == 1 and i >= 0 and out_last[i] == 1 and wb_cyc[i] > 0:
                s = max(q, out[i, 10])
                out[i, 11] = s
                out[i, 12] = s + wb_cyc[i]
                q = out[i, 12]
                rel[3, out[i, 13]] = out[i, 12]
                last_wb = out[i, 12]
            if j >= n:
                continue
            for buf, cyc, col in ((0, w_cyc, 0), (2, e_cyc, 6), (1, a_cyc, 3)):
                if cyc[j] <= 0:
                    continue
                late = buf == 1 and barrier[j] == 1
                if (phase == 0 and late) or (phase == 1 and not late):
                    continue
                slot = (cur[buf] + 1) % slots[buf]
                ready = rel[buf, slot]
                if late:
                    ready = max(ready, last_wb)
                s = max(q, ready)
                out[j, col] = s
                out[j, col + 1] = s + cyc[j]
                out[j, col + 2] = slot
                q = s + cyc[j]
                cur[buf] = slot
        if j >= n:
            break
        start = prev_end
        for col, flag in ((1, w_cyc[j]), (4, a_cyc[j]), (7, e_cyc[j])):
            if flag > 0:
                start = max(start, out[j, col])
        if out_first[j] == 1:
            cur[3] = (cur[3] + 1) % slots[3]
            start = max(start, rel[3, cur[3]])
        out[j, 13] = cur[3]
        for col in (2, 5, 8):
            if out[j, col] < 0:
                out[j, col] = cur[col // 3]
        out[j, 9] = start
        out[j, 10] = start + compute[j]
        prev_end = out[j, 10]
        for buf, use in ((0, w_use[j]), (1, a_use[j]), (2, e_use[j])):
            if use == 1:
                rel[buf, cur[buf]] = prev_end


def _timeline_py(w_cyc, a_cyc, e_cyc, wb_cyc, compute, out_first, out_last, barrier,
                 w_use, a_use, e_use, slots, out):
    """Readable twin of ``_timeline_nb`` (same arguments, fills ``out`` in place)."""
    names = ("w", "a", "e", "o")
    release = {b: [0] * int(slots[k]) for k, b in enumerate(names)}
    current = {b: int(slots[k]) - 1 for k, b in enumerate(names)}
    cycles = {"w": w_cyc, "a": a_cyc, "e": e_cyc}
    column = {"w": 0, "a": 3, "e": 6}
    queue_free = 0
    last_writeback = 0
    previous_end = 0

    def load(step, buf, after_writebacks):
        nonlocal queue_free
        slot = (current[buf] + 1) % len(release[buf])
        ready = release[buf][slot]
        if after_writebacks:
            ready = max(ready, last_writeback)
        begin = max(queue_free, ready)
        queue_free = begin + int(cycles[buf][step])
        out[step, column[buf]:column[buf] + 3] = (begin, queue_free, slot)
        current[buf] = slot

    def issue_loads(step, late):
        for buf in ("w", "e", "a"):
            if cycles[buf][step] > 0 and (buf == "a" and barrier[step] == 1) == late:
                load(step, buf, late)

    if len(compute):
        issue_loads(0, False)
        issue_loads(0, True)
    for step in range(len(compute)):
        start = previous_end
        for buf in ("w", "a", "e"):
            if cycles[buf][step] > 0:
                start = max(start, out[step, column[buf] + 1])
        if out_first[step] == 1:
            current["o"] = (current["o"] + 1) % len(release["o"])
            start = max(start, release["o"][current["o"]])
        out[step, 13] = current["o"]
        for buf in ("w", "a", "e"):
            if out[step, column[buf] + 2] < 0:
                out[step, column[buf] + 2] = current[buf]
        out[step, 9], out[step, 10] = start, start + int(compute[step])
        previous_end = int(out[step, 10])
        for buf, use in (("w", w_use), ("a", a_use), ("e", e_use)):
            if use[step] == 1:
                release[buf][current[buf]] = previous_end
        nxt = step + 1
        if nxt < len(compute):
            issue_loads(nxt, False)
        if out_last[step] == 1 and wb_cyc[step] > 0:
            begin = max(queue_free, previous_end)
            queue_free = begin + int(wb_cyc[step])
            out[step, 11], out[step, 12] = begin, queue_free
            release["o"][current["o"]] = queue_free
            last_writeback = queue_free
        if nxt < len(compute):
            issue_loads(nxt, True)


def timeline(cycles: dict[str, np.ndarray], flags: dict[str, np.ndarray], slots: tuple[int, int, int, int],
             *, python: bool = False) -> np.ndarray:
    """Place every step in time. Returns int64 [steps, 14] with columns ``TIMELINE_COLUMNS``.

    Args:
        cycles: "w", "a", "e" (load cycles of step i into the weight / input / embedding SRAM, 0 =
            no load), "wb" (writeback cycles), "compute" (cycles on the array or vector unit).
        flags: 0/1 int64 arrays "out_first", "out_last", "barrier", "w_use", "a_use", "e_use".
        slots: number of slots of the (weight, input, embedding, output) SRAMs (1 or 2).
        python: run the readable twin instead of the Numba kernel.
    Unset columns (no such load / writeback) are −1; the slot columns always name the slot the
    step uses.
    """
    arrays = [cycles[k] for k in ("w", "a", "e", "wb", "compute")]
    arrays += [flags[k] for k in ("out_first", "out_last", "barrier", "w_use", "a_use", "e_use")]
    arrays = [np.ascontiguousarray(a, dtype=np.int64) for a in arrays]
    size = arrays[0].shape[0]
    if any(a.ndim != 1 or a.shape[0] != size for a in arrays):
        raise ValueError("timeline: every per-step array must be 1-D of the same length")
    if any(int(a.min(initial=0)) < 0 for a in arrays):
        raise ValueError("timeline: negative cycles or flags")
    slot_arr = np.asarray(slots, dtype=np.int64)
    if slot_arr.shape != (4,) or slot_arr.min() < 1 or slot_arr.max() > 2:
        raise ValueError(f"timeline: slots must be four values of 1 or 2, got {slots}")
    out = np.full((size, len(TIMELINE_COLUMNS)), -1, dtype=np.int64)
    (_timeline_py if python else _timeline_nb)(*arrays, slot_arr, out)
    return out


@njit(cache=True)
def _folds_nb(step, g, m0, m1, k0, k1, n0, n1, start, fold_len, offsets, code, rows, cols,
              out):  # pragma: no cover - compiled
    for s in range(step.shape[0]):
        f = offsets[s]
        t = start[s]
        if code == 0:  # ws: n-block outer, k-block inner
            outer0, outer1, ostep, inner0, inner1, istep = n0[s], n1[s], cols, k0[s], k1[s], rows
        elif code == 1:  # os: m-block outer, n-block inner
            outer0, outer1, ostep, inner0, inner1, istep = m0[s], m1[s], rows, n0[s], n1[s], cols
        else:  # is: m-block outer, k-block inner
            outer0, outer1, ostep, inner0, inner1, istep = m0[s], m1[s], cols, k0[s], k1[s], rows
        a = outer0
        while a < outer1:
            b = inner0
            while b < inner1:
                a1 = min(a + ostep, outer1)
                b1 = min(b + istep, inner1)
                out[f, 0] = step[s]
                out[f, 1] = g[s]
                out[f, 2], out[f, 3] = m0[s], m1[s]
                out[f, 4], out[f, 5] = k0[s], k1[s]
                out[f, 6], out[f, 7] = n0[s], n1[s]
                if code == 0:
                    out[f, 6], out[f, 7], out[f, 4], out[f, 5] = a, a1, b, b1
                elif code == 1:
                    out[f, 2], out[f, 3], out[f, 6], out[f, 7] = a, a1, b, b1
                else:
                    out[f, 2], out[f, 3], out[f, 4], out[f, 5] = a, a1, b, b1
                out[f, 8] = t
                t += fold_len[s]
                f += 1
                b += istep
            a += ostep


def _folds_py(step, g, m0, m1, k0, k1, n0, n1, start, fold_len, offsets, code, rows, cols, out):
    """Readable twin of ``_folds_nb``."""
    f = 0
    for s in range(len(step)):
        mb = [(a, min(a + (rows if code == 1 else cols), m1[s])) for a in
              range(m0[s], m1[s], rows if code == 1 else cols)] if code else [(m0[s], m1[s])]
        kb = [(a, min(a + rows, k1[s])) for a in range(k0[s], k1[s], rows)] if code != 1 \
            else [(k0[s], k1[s])]
        nb = [(a, min(a + cols, n1[s])) for a in range(n0[s], n1[s], cols)] if code != 2 \
            else [(n0[s], n1[s])]
        if code == 0:
            order = [(m, k, n) for n in nb for k in kb for m in mb]
        elif code == 1:
            order = [(m, k, n) for m in mb for n in nb for k in kb]
        else:
            order = [(m, k, n) for m in mb for k in kb for n in nb]
        for i, (m, k, n) in enumerate(order):
            out[f] = (step[s], g[s], m[0], m[1], k[0], k[1], n[0], n[1], start[s] + i * fold_len[s])
            f += 1


def expand_folds(steps: dict[str, np.ndarray], folds: np.ndarray, rows: int, cols: int, code: int,
                 *, python: bool = False) -> np.ndarray:
    """Every fold of the given GEMM steps: int64 [sum(folds), 9] with ``FOLD_COLUMNS``.

    ``steps`` holds int64 arrays step, g, m0, m1, k0, k1, n0, n1, start (compute start) and
    fold_len; ``folds`` the fold count of each step (must match the block grid).
    """
    keys = ("step", "g", "m0", "m1", "k0", "k1", "n0", "n1", "start", "fold_len")
    arrays = [np.ascontiguousarray(steps[k], dtype=np.int64) for k in keys]
    folds = np.asarray(folds, dtype=np.int64)
    if any(a.shape != folds.shape for a in arrays) or code not in (0, 1, 2) or rows < 1 or cols < 1:
        raise ValueError("expand_folds: inconsistent step arrays or array parameters")
    offsets = np.concatenate([[0], np.cumsum(folds)[:-1]]).astype(np.int64)
    out = np.zeros((int(folds.sum()), len(FOLD_COLUMNS)), dtype=np.int64)
    (_folds_py if python else _folds_nb)(*arrays, offsets, code, rows, cols, out)
    return out
