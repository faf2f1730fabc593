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
embedding.py  (full semantics in the module docstring)
  gather: data, indices -> np.take(data, indices, axis)              attrs: axis
  embedding_bag: table[R,D], indices[L] (int), offsets (int), per_sample_weights[L]? -> [B,D]
        attrs: mode ("sum"|"mean"|"max"), include_last_offset, empty_value;
        B = len(offsets) - include_last_offset; bag b = indices[offsets[b]:offsets[b+1]]
        (the last bag runs to L unless include_last_offset); an empty bag's row = empty_value
  scatter_nd: data, indices, updates -> attrs: reduction ("none"|"add"|"mul"|"max"|"min")
  scatter_elements / gather_elements / gather_nd: ONNX semantics; attrs: axis / reduction / batch_dims
elementwise.py  (full list and attributes in the module docstring)
  unary, named by ONNX op in snake case: relu, sigmoid, tanh, erf, exp, log, sqrt, neg, abs,
  reciprocal, not, isnan, floor, ceil, round, sign, softplus, softsign, sin ... atanh, mish,
  bitwise_not, hard_swish; with attrs: leaky_relu (alpha), elu (alpha), selu (alpha, gamma),
  celu (alpha), thresholded_relu (alpha), hard_sigmoid (alpha, beta), swish (alpha), shrink
  (bias, lambd), gelu (approximate "none"|"tanh"), isinf (detect_negative, detect_positive)
  binary, numpy broadcasting: add, sub, mul, div (ints truncate), pow (base dtype), mod
  (fmod), equal, less, less_or_equal, greater, greater_or_equal, and, or, xor, bitwise_and/
  or/xor, prelu (X, slope), bit_shift (direction)
  variadic: max, min, sum, mean;  where: cond, X, Y;  clip: X, min?, max?
  cast: X -> attrs: to (numpy dtype; every float target is float32), round_to (""|"float16"|
  "bfloat16": round to that grid, keep fp32)
normalization.py
  layer_norm: X, scale, bias? -> Y[, mean, inv_std_dev]; attrs: axis, epsilon
  rms_norm: X, scale -> Y; attrs: axis, epsilon
  batch_norm: X, scale, bias, mean, var -> attrs: epsilon (inference form; only left when it
  cannot be folded into a preceding conv)
  instance_norm: X, scale, bias -> attrs: epsilon
  group_norm: X, scale, bias -> attrs: num_groups, epsilon, per_group_affine
  softmax / log_softmax / hardmax: attrs: axes (normalised jointly; one axis from opset 13)
  reduce_sum / reduce_mean / reduce_max / reduce_min / reduce_prod / reduce_l1 / reduce_l2 /
  reduce_log_sum / reduce_log_sum_exp / reduce_sum_square: X, axes? (run-time int64) ->
  attrs: axes (tuple; None = all; () = none), keepdims, noop_with_empty_axes
  argmax / argmin: attrs: axis, keepdims, select_last_index -> int64
pooling.py
  max_pool: X -> Y[, Indices int64]; attrs: kernel_shape, strides, pads, dilations,
  ceil_mode, storage_order
  avg_pool: attrs: kernel_shape, strides, pads, dilations, ceil_mode, count_include_pad
  global_avg_pool / global_max_pool: X[N,C,*spatial] -> [N,C,1,...,1]
layout.py  (operands and attributes of each op in the module docstring; views where possible)
  identity, reshape (X, shape; allowzero), transpose (perm or None = reverse), concat (axis),
  slice (X, starts, ends, axes, steps tensors), squeeze / unsqueeze (X, axes?; attrs: axes or
  None), flatten (axis), expand (X, shape), split (X, split?; axis, split, num_outputs),
  shape (start, end), size, range (start, limit, delta), constant_of_shape (shape; value,
  dtype), tile (X, repeats), pad (X, pads, value?, axes?; mode), trilu (X, k?; upper),
  eye_like (k, dtype)
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
