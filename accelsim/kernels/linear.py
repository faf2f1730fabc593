"""GEMM-like kernels: ``gemm`` (ONNX Gemm semantics) and ``matmul`` (numpy matmul).

Row exactness. Every product is computed so that each row of the batch gets the same fp32
bits whatever the other rows are and however many there are: OpenBLAS sgemm's result for one
row depends on the total row count M (its blocking and edge kernels change with M), so

* a 2-D left operand ``A[M, K]`` is multiplied in fixed blocks of :data:`ROW_BLOCK` rows
  (the last block zero-padded): one sgemm of shape ``[ROW_BLOCK, K] @ [K, N]`` per block,
  whose per-row result is independent of the block's other rows (checked in
  ``tests/test_linear_kernels.py``);
* a left operand of rank >= 3 (``[B, ..., M, K]``) is multiplied per leading index (numpy's
  stacked matmul: one sgemm per ``[M, K] @ [K, N]`` matrix), so sample ``b`` depends on
  sample ``b`` only.

This is what lets fault injection recompute a few rows of the batch and get exactly the bits a
full re-run would give (:mod:`faults.inject`). The cost is at most ~1.5-2× a single big sgemm
for 2-D operands (the right operand is re-packed per block); stacked products run at full
BLAS rate.

``gemm_rows`` is the validating wrapper of the private ``_blocked``; ``gemm_rows_reference``
its readable twin (one block at a time).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from accelsim.ir import Instruction
from accelsim.kernels import kernel, parallel

ROW_BLOCK = 8


def _blocked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a[M, K] @ b[K, N]`` in blocks of ROW_BLOCK rows (one sgemm per block) -> [M, N]."""
    m, k = a.shape
    pad = (-m) % ROW_BLOCK
    if pad:
        padded = np.zeros((m + pad, k), dtype=a.dtype)
        padded[:m] = a
        a = padded
    else:
        a = np.ascontiguousarray(a)
    blocks = a.reshape(-1, ROW_BLOCK, k)
    y = np.empty((blocks.shape[0], ROW_BLOCK, b.shape[1]), dtype=np.result_type(a, b))

    def part(lo: int, hi: int) -> None:
        np.matmul(blocks[lo:hi], b, out=y[lo:hi])

    parallel.split(part, blocks.shape[0], 2.0 * (m + pad) * k * b.shape[1])
    y = y.reshape(m + pad, b.shape[1])
    return y[:m] if pad else y


def gemm_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-exact ``a[M, K] @ b[K, N]`` (fp32): row m of the result depends on ``a[m]`` only."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm_rows: shapes {list(a.shape)} and {list(b.shape)} do not multiply")
    if a.dtype != np.float32 or b.dtype != np.float32:
        raise ValueError(f"gemm_rows: fp32 operands expected, got {a.dtype} and {b.dtype}")
    return _blocked(a, b)


def gemm_rows_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Readable twin of :func:`gemm_rows`: each block of rows multiplied on its own."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
    for start in range(0, a.shape[0], ROW_BLOCK):
        block = np.zeros((ROW_BLOCK, a.shape[1]), dtype=np.float32)
        part = a[start:start + ROW_BLOCK]
        block[: part.shape[0]] = part
        out[start:start + part.shape[0]] = (block @ b)[: part.shape[0]]
    return out


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-exact numpy-matmul semantics for float operands (module docstring)."""
    if a.dtype.kind != "f" or b.dtype.kind != "f" or a.dtype != b.dtype or a.ndim < 2 or b.ndim < 2:
        return np.matmul(a, b)
    if a.ndim == 2 and b.ndim == 2:
        if a.dtype != np.float32:
            return np.matmul(a, b)
        return _blocked(a, b)
    return _stacked(_blas_friendly(a), _blas_friendly(b))


def _stacked(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy's stacked matmul (one sgemm per leading index), split over the leading axis."""
    lead = a.shape[0] if a.ndim >= 3 else 0
    if parallel.threads() <= 1 or lead < 2 or not (b.ndim == 2 or b.shape[:-2] == a.shape[:-2]):
        return np.matmul(a, b)
    out = np.empty(a.shape[:-1] + (b.shape[-1],), dtype=np.result_type(a, b))

    def part(lo: int, hi: int) -> None:
        np.matmul(a[lo:hi], b if b.ndim == 2 else b[lo:hi], out=out[lo:hi])

    parallel.split(part, lead, 2.0 * a.size * b.shape[-1])
    return out


@kernel("gemm")
def gemm(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Y[M,N] = alpha * A'[M,K] @ B'[K,N] + beta * C (broadcast to [M,N]); rows exact."""
    a, b, c = (list(args) + [None])[:3]
    if inst.attrs["trans_a"]:
        a = a.T
    if inst.attrs["trans_b"]:
        b = b.T
    y = _product(a, b)
    alpha = inst.attrs["alpha"]
    if alpha != 1.0:
        y = y * y.dtype.type(alpha)
    if c is not None:
        beta = inst.attrs["beta"]
        y = y + (c if beta == 1.0 else c * c.dtype.type(beta))
    return (y,)


@kernel("matmul")
def matmul(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """numpy matmul: A[..., M, K] @ B[..., K, N] -> [..., M, N] (1-D operands as in numpy).

    Row exact (module docstring): a 2-D A in blocks of ROW_BLOCK rows, a stacked A one sgemm
    per leading index; batched operands are made BLAS-friendly first — numpy's stacked matmul
    falls back to a slow non-BLAS loop on strided views (e.g. the transposed keys of attention).
    """
    a, b = args
    return (_product(np.asarray(a), np.asarray(b)),)


def _blas_friendly(x: np.ndarray) -> np.ndarray:
    """``x`` itself if its last two axes are C- or F-contiguous matrices, else a C copy."""
    if x.ndim < 2 or x.flags.c_contiguous:
        return x
    item = x.itemsize
    rows, cols = x.strides[-2], x.strides[-1]
    if cols == item and rows == item * x.shape[-1] or rows == item and cols == item * x.shape[-2]:
        return x
    return np.ascontiguousarray(x)
