"""Elementwise kernels (numpy broadcasting; fp32 stays fp32, integer/bool dtypes are kept).

IR ops (ONNX op names in snake case; attributes as normalised by the frontend):

* unary, no attrs: relu, sigmoid, tanh, erf, exp, log, sqrt, neg, abs, reciprocal, not,
  isnan, floor, ceil, round (half to even), sign, softplus, softsign, sin, cos, tan, asin,
  acos, atan, sinh, cosh, asinh, acosh, atanh, mish, bitwise_not
* unary with attrs: leaky_relu (alpha), elu (alpha), selu (alpha, gamma), celu (alpha),
  thresholded_relu (alpha), hard_sigmoid (alpha, beta), hard_swish, swish (alpha),
  shrink (bias, lambd), gelu (approximate "none"|"tanh"), isinf (detect_negative,
  detect_positive), cast (to: numpy dtype name of the result; round_to: "" | "float16" |
  "bfloat16" — floats are held in fp32, a cast to a narrower float rounds to its grid)
* binary: add, sub, mul, div (integers truncate toward zero), pow (result has the base's
  dtype), mod (fmod 0: sign of divisor; 1: C fmod), equal, less, less_or_equal, greater,
  greater_or_equal, and, or, xor, bitwise_and, bitwise_or, bitwise_xor, prelu (X, slope),
  bit_shift (direction "LEFT"|"RIGHT")
* variadic (n >= 1, broadcast): max, min, sum, mean
* where: cond, X, Y;  clip: X, min?, max? (absent bound = unbounded)

Transcendental functions whose fp32 numpy versions are not accurate to ~1 ulp (erf, gelu)
are computed in float64 and rounded to fp32.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from accelsim.ir import Instruction
from accelsim.kernels import kernel, parallel

_erf64: Callable[[np.ndarray], np.ndarray] | None = None


def erf(x: np.ndarray) -> np.ndarray:
    """Error function, computed in float64 (Numba-vectorised ``math.erf``), result in x's dtype."""
    global _erf64
    if _erf64 is None:
        import numba

        def _scalar_erf(v):  # pragma: no cover - compiled
            return math.erf(v)

        try:
            _erf64 = numba.vectorize(["float64(float64)"], cache=True)(_scalar_erf)
        except RuntimeError:  # no writable cache location: compile without caching
            _erf64 = numba.vectorize(["float64(float64)"])(_scalar_erf)
    return _erf64(np.asarray(x, dtype=np.float64)).astype(np.asarray(x).dtype, copy=False)


def _f(x: np.ndarray, value: float):
    """``value`` as a scalar of x's dtype (float attrs applied to fp32 tensors stay fp32)."""
    return x.dtype.type(value) if x.dtype.kind == "f" else value


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    one = _f(x, 1.0)
    return np.where(x >= 0, one / (one + e), e / (one + e)).astype(x.dtype, copy=False)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(_f(x, 0.0), x)


def gelu_reference(x: np.ndarray, approximate: str) -> np.ndarray:
    """Readable twin of :func:`gelu`: float64 numpy math, rounded once to x's dtype."""
    v = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # ±inf·0 = NaN, as the fused loop gives
        if approximate == "tanh":
            y = 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3)))
        else:
            y = 0.5 * v * (1.0 + erf(v / math.sqrt(2.0)))
    return y.astype(x.dtype, copy=False)


_gelu_erf_fast = None


def _gelu_kernel():
    """The fused GELU loop (compiled once): per element ``0.5·v·(1 + erf(v / √2))`` in float64,
    the same operations in the same order as :func:`gelu_reference`, one pass, no temporaries."""
    global _gelu_erf_fast
    if _gelu_erf_fast is None:
        import numba

        def loop(x, out):  # pragma: no cover - compiled
            root2 = math.sqrt(2.0)
            for i in range(x.size):
                v = np.float64(x[i])
                out[i] = 0.5 * v * (1.0 + math.erf(v / root2))

        try:
            _gelu_erf_fast = numba.njit(cache=True, nogil=True)(loop)
        except RuntimeError:  # no writable cache location
            _gelu_erf_fast = numba.njit(nogil=True)(loop)
    return _gelu_erf_fast


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU of a float array (exact erf form in one fused compiled pass for fp32; other dtypes
    and the tanh form via :func:`gelu_reference`). Bit-identical to the reference."""
    x = np.asarray(x)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: unknown approximation {approximate!r}")
    if approximate != "none" or x.dtype != np.float32:
        return gelu_reference(x, approximate)
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.size, dtype=np.float32)
    loop = _gelu_kernel()

    def part(lo: int, hi: int) -> None:
        loop(flat[lo:hi], out[lo:hi])

    parallel.split(part, flat.size, 20.0 * flat.size)
    return out.reshape(x.shape)


_UNARY: dict[str, Callable[[np.ndarray, Instruction], np.ndarray]] = {
    "relu": lambda x, i: np.maximum(x, x.dtype.type(0)),
    "sigmoid": lambda x, i: _sigmoid(x),
    "tanh": lambda x, i: np.tanh(x),
    "erf": lambda x, i: erf(x),
    "exp": lambda x, i: np.exp(x),
    "log": lambda x, i: np.log(x),
    "sqrt": lambda x, i: np.sqrt(x),
    "neg": lambda x, i: np.negative(x),
    "abs": lambda x, i: np.abs(x),
    "reciprocal": lambda x, i: np.reciprocal(x) if x.dtype.kind == "f" else 1 // x,
    "not": lambda x, i: np.logical_not(x),
    "bitwise_not": lambda x, i: np.invert(x),
    "isnan": lambda x, i: np.isnan(x),
    "floor": lambda x, i: np.floor(x),
    "ceil": lambda x, i: np.ceil(x),
    "round": lambda x, i: np.round(x),
    "sign": lambda x, i: np.sign(x),
    "softplus": lambda x, i: _softplus(x),
    "softsign": lambda x, i: x / (_f(x, 1.0) + np.abs(x)),
    "sin": lambda x, i: np.sin(x),
    "cos": lambda x, i: np.cos(x),
    "tan": lambda x, i: np.tan(x),
    "asin": lambda x, i: np.arcsin(x),
    "acos": lambda x, i: np.arccos(x),
    "atan": lambda x, i: np.arctan(x),
    "sinh": lambda x, i: np.sinh(x),
    "cosh": lambda x, i: np.cosh(x),
    "asinh": lambda x, i: np.arcsinh(x),
    "acosh": lambda x, i: np.arccosh(x),
    "atanh": lambda x, i: np.arctanh(x),
    "mish": lambda x, i: x * np.tanh(_softplus(x)),
    "leaky_relu": lambda x, i: np.where(x >= 0, x, x * _f(x, i.attrs["alpha"])),
    "elu": lambda x, i: np.where(x >= 0, x, _f(x, i.attrs["alpha"]) * np.expm1(np.minimum(x, 0))),
    "selu": lambda x, i: _f(x, i.attrs["gamma"]) * np.where(
        x > 0, x, _f(x, i.attrs["alpha"]) * np.expm1(np.minimum(x, 0))),
    "celu": lambda x, i: np.maximum(x, 0) + np.minimum(
        0, _f(x, i.attrs["alpha"]) * np.expm1(x / _f(x, i.attrs["alpha"]))),
    "thresholded_relu": lambda x, i: np.where(x > _f(x, i.attrs["alpha"]), x, _f(x, 0.0)),
    "hard_sigmoid": lambda x, i: np.clip(
        x * _f(x, i.attrs["alpha"]) + _f(x, i.attrs["beta"]), _f(x, 0.0), _f(x, 1.0)),
    "hard_swish": lambda x, i: x * np.clip(
        x * _f(x, 1.0 / 6.0) + _f(x, 0.5), _f(x, 0.0), _f(x, 1.0)),
    "swish": lambda x, i: x * _sigmoid(x * _f(x, i.attrs["alpha"])),
    "shrink": lambda x, i: np.where(
        x < -_f(x, i.attrs["lambd"]), x + _f(x, i.attrs["bias"]),
        np.where(x > _f(x, i.attrs["lambd"]), x - _f(x, i.attrs["bias"]), x.dtype.type(0))),
    "gelu": lambda x, i: gelu(x, i.attrs["approximate"]),
    "isinf": lambda x, i: (np.isposinf(x) & bool(i.attrs["detect_positive"]))
    | (np.isneginf(x) & bool(i.attrs["detect_negative"])),
}


@kernel(*_UNARY)
def unary(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Y = f(X) elementwise (see module docstring); fp32 in, fp32 out."""
    x = np.asarray(args[0])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y = _UNARY[inst.op](x, inst)
    y = np.asarray(y)
    if y.dtype != x.dtype and y.dtype != np.bool_:
        y = y.astype(x.dtype)
    return (y,)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        q = np.floor_divide(a, b)
        # floor -> truncation toward zero where the signs differ and the division is inexact
        fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
        return q + fix.astype(q.dtype)
    return np.divide(a, b)


def _pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f" and b.dtype == a.dtype:
        return np.power(a, b)
    return np.power(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)


def _mod(a: np.ndarray, b: np.ndarray, fmod: int) -> np.ndarray:
    return np.fmod(a, b) if fmod else np.mod(a, b)


def _bit_shift(a: np.ndarray, b: np.ndarray, direction: str) -> np.ndarray:
    b = b.astype(a.dtype)
    return np.left_shift(a, b) if direction == "LEFT" else np.right_shift(a, b)


_BINARY: dict[str, Callable[[np.ndarray, np.ndarray, Instruction], np.ndarray]] = {
    "add": lambda a, b, i: np.add(a, b),
    "sub": lambda a, b, i: np.subtract(a, b),
    "mul": lambda a, b, i: np.multiply(a, b),
    "div": lambda a, b, i: _div(a, b),
    "pow": lambda a, b, i: _pow(a, b),
    "mod": lambda a, b, i: _mod(a, b, i.attrs["fmod"]),
    "equal": lambda a, b, i: np.equal(a, b),
    "less": lambda a, b, i: np.less(a, b),
    "less_or_equal": lambda a, b, i: np.less_equal(a, b),
    "greater": lambda a, b, i: np.greater(a, b),
    "greater_or_equal": lambda a, b, i: np.greater_equal(a, b),
    "and": lambda a, b, i: np.logical_and(a, b),
    "or": lambda a, b, i: np.logical_or(a, b),
    "xor": lambda a, b, i: np.logical_xor(a, b),
    "bitwise_and": lambda a, b, i: np.bitwise_and(a, b),
    "bitwise_or": lambda a, b, i: np.bitwise_or(a, b),
    "bitwise_xor": lambda a, b, i: np.bitwise_xor(a, b),
    "prelu": lambda a, b, i: np.where(a < 0, a * b, a),
    "bit_shift": lambda a, b, i: _bit_shift(a, b, i.attrs["direction"]),
}

_COMPARE = {"equal", "less", "less_or_equal", "greater", "greater_or_equal", "and", "or", "xor"}


_SPLIT_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


def _split_binary(inst: Instruction, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """Large float add/sub/mul/div split over the output's leading axis on the kernel threads
    (elementwise: every element is the same operation whatever the split), else None."""
    if parallel.threads() <= 1 or inst.op not in _SPLIT_BINARY or a.dtype != b.dtype or a.dtype.kind != "f":
        return None
    shape = np.broadcast_shapes(a.shape, b.shape)
    if len(shape) < 2 or shape[0] < 2 or int(np.prod(shape)) < 1 << 18:
        return None
    lead = [x for x in (a, b) if x.ndim == len(shape) and x.shape[0] == shape[0]]
    if not lead:
        return None
    out = np.empty(shape, dtype=a.dtype)
    fn = _SPLIT_BINARY[inst.op]

    def rows(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return x[lo:hi] if x.ndim == len(shape) and x.shape[0] == shape[0] else x

    def part(lo: int, hi: int) -> None:
        fn(rows(a, lo, hi), rows(b, lo, hi), out=out[lo:hi])

    parallel.split(part, shape[0], 10.0 * out.size)
    return out


@kernel(*_BINARY)
def binary(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Y = f(A, B) with numpy (ONNX multidirectional) broadcasting."""
    a, b = np.asarray(args[0]), np.asarray(args[1])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y = _split_binary(inst, a, b)
        if y is None:
            y = np.asarray(_BINARY[inst.op](a, b, inst))
    if inst.op not in _COMPARE and y.dtype != a.dtype:
        y = y.astype(a.dtype)
    return (y,)


@kernel("max", "min", "sum", "mean")
def variadic(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Elementwise max/min/sum/mean of n >= 1 broadcast operands (left to right)."""
    arrays = [np.asarray(a) for a in args if a is not None]
    fn = {"max": np.maximum, "min": np.minimum, "sum": np.add, "mean": np.add}[inst.op]
    y = arrays[0]
    for other in arrays[1:]:
        y = fn(y, other)
    if inst.op == "mean":
        y = y / _f(y, float(len(arrays)))
    y = np.array(y, dtype=arrays[0].dtype, copy=len(arrays) == 1)
    return (y,)


@kernel("where")
def where(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Y = X where cond else Y (broadcast)."""
    cond, x, y = args
    return (np.where(cond, x, y),)


@kernel("clip")
def clip(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Y = min(max(X, min), max); an absent bound is no bound (min > max gives max)."""
    x, low, high = (list(args) + [None, None])[:3]
    y = np.asarray(x)
    if low is not None:
        y = np.maximum(y, np.asarray(low, dtype=y.dtype))
    if high is not None:
        y = np.minimum(y, np.asarray(high, dtype=y.dtype))
    if y is x:
        y = y.copy()
    return (y,)


def round_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """fp32 values rounded to the nearest bfloat16 (ties to even), held in fp32."""
    raw = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((raw + 0x7FFF + ((raw >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), rounded)


@kernel("cast")
def cast(inst: Instruction, args: Sequence[np.ndarray | None]) -> tuple[np.ndarray, ...]:
    """Y = X converted to dtype ``to`` (float -> int truncates toward zero, as C)."""
    x = np.asarray(args[0])
    to = np.dtype(inst.attrs["to"])
    round_to = inst.attrs["round_to"]
    with np.errstate(invalid="ignore", over="ignore"):
        if round_to == "float16":
            x = x.astype(np.float16).astype(np.float32)
        elif round_to == "bfloat16":
            x = round_to_bfloat16(x.astype(np.float32))
        if to.kind in "iu" and x.dtype.kind == "f":
            x = np.trunc(x)
        y = x.astype(to)
    return (y,)
