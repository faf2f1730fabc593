"""GEMM-like kernels: ``gemm`` (ONNX Gemm semantics) and ``matmul`` (numpy matmul)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from accelsim.ir import Instruction
from accelsim.kernels import kernel


@kernel("gemm")
def gemm(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Y[M,N] = alpha * A'[M,K] @ B'[K,N] + beta * C (broadcast to [M,N])."""
    a, b, c = (list(args) + [None])[:3]
    if inst.attrs["trans_a"]:
        a = a.T
    if inst.attrs["trans_b"]:
        b = b.T
    y = a @ b
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

    Speed: activations times a 2-D weight run as one [prod(...)·M, K] @ [K, N] BLAS GEMM, and
    batched operands are made contiguous first — numpy's stacked matmul falls back to a slow
    non-BLAS loop on strided views (e.g. the transposed keys of attention).
    """
    a, b = args
    if a.ndim > 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype.kind == "f":
        flat = np.ascontiguousarray(a).reshape(-1, a.shape[-1]) @ b
        return (flat.reshape(a.shape[:-1] + (b.shape[1],)),)
    if a.ndim > 2 or b.ndim > 2:
        a = _blas_friendly(a)
        b = _blas_friendly(b)
    return (np.matmul(a, b),)


def _blas_friendly(x: np.ndarray) -> np.ndarray:
    """``x`` itself if its last two axes are C- or F-contiguous matrices, else a C copy."""
    if x.ndim < 2 or x.flags.c_contiguous:
        return x
    item = x.itemsize
    rows, cols = x.strides[-2], x.strides[-1]
    if cols == item and rows == item * x.shape[-1] or rows == item and cols == item * x.shape[-2]:
        return x
    return np.ascontiguousarray(x)
