"""Functional kernels of the IR ops, registered by IR op name.

A kernel is ``fn(inst, args) -> tuple[np.ndarray, ...]``: ``inst`` is the
:class:`accelsim.ir.Instruction` (its ``attrs`` are normalised by the frontend, so a kernel
never fills in defaults), ``args`` the input arrays in operand order (``None`` for an absent
optional input). Kernels never modify their inputs in place: parameter arrays are read-only
golden values and activations may live in the golden cache.

Floating-point compute is fp32 (activations are float32 throughout); integer tensors keep
their ONNX dtype (int64 indices, bool masks).

Each family lives in its own module and registers itself with :func:`kernel`. The IR op
reference (op: operands -> results; attributes):

linear.py
  gemm: A[M,K] (or [K,M] if trans_a), B[K,N] (or [N,K] if trans_b), C? -> Y = alpha*A'B' + beta*C
        attrs: alpha, beta, trans_a, trans_b
  matmul: A[...,M,K], B[...,K,N] -> numpy matmul semantics (batched, broadcast)
conv.py
  conv: X[N,C,*spatial], W[O,C/group,*kernel], B[O]? -> Y[N,O,*out]
        attrs: strides, pads (begin..., end...), dilations, group
embedding.py
  gather: data, indices -> np.take(data, indices, axis)              attrs: axis
  embedding_bag: table[R,D], indices[L] (int), offsets[B] (int) -> [B,D]
        attrs: mode ("sum"|"mean"|"max"); bag b = indices[offsets[b]:offsets[b+1]]
        (last bag runs to L); empty bag -> zeros
  scatter_nd: data, indices, updates -> attrs: reduction ("none"|"add"|"mul"|"max"|"min")
  scatter_elements / gather_elements / gather_nd: ONNX semantics; attrs: axis / reduction / batch_dims
elementwise.py
  unary ops named by ONNX op in snake case (relu, sigmoid, tanh, erf, exp, log, sqrt, neg,
  abs, reciprocal, not, isnan, isinf, floor, ceil, sign, ...); binary (add, sub, mul, div,
  pow, equal, less, greater, and, or, ...) with numpy broadcasting; where; cast (attrs: to, a
  numpy dtype name); clip; gelu (attrs: approximate "none"|"tanh"); leaky_relu (alpha) ...
normalization.py
  layer_norm: X, scale, bias? -> attrs: axis, epsilon
  batch_norm: X, scale, bias, mean, var -> attrs: epsilon (inference form; only left when it
  cannot be folded into a preceding conv)
  softmax / log_softmax: attrs: axis
  reduce_sum / reduce_mean / reduce_max / reduce_min / reduce_prod: attrs: axes (tuple or
  None = all), keepdims
pooling.py
  max_pool / avg_pool: attrs: kernel_shape, strides, pads, dilations, ceil_mode,
  count_include_pad; global_avg_pool / global_max_pool
layout.py
  reshape (X, shape tensor; attrs: allowzero), transpose (perm), concat (axis), slice (X,
  starts, ends, axes, steps tensors), squeeze/unsqueeze (attrs: axes), flatten (axis),
  expand (X, shape), split (attrs: axis, split sizes), shape (attrs: start, end), range,
  constant_of_shape (attrs: value), tile, pad, identity ...
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from accelsim.ir import Instruction

Kernel = Callable[[Instruction, Sequence[np.ndarray | None]], tuple[np.ndarray, ...]]

KERNELS: dict[str, Kernel] = {}


def kernel(*op_names: str) -> Callable[[Kernel], Kernel]:
    """Register ``fn`` as the kernel of every IR op in ``op_names``."""

    def register(fn: Kernel) -> Kernel:
        for op in op_names:
            if op in KERNELS:
                raise RuntimeError(f"IR op {op!r} registered twice")
            KERNELS[op] = fn
        return fn

    return register


def _load_families() -> None:
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_load_families()
