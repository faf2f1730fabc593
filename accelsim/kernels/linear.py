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
    """numpy matmul: A[..., M, K] @ B[..., K, N] -> [..., M, N] (1-D operands as in numpy)."""
    a, b = args
    return (np.matmul(a, b),)
