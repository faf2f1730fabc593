"""Symbolic evaluation of a Loop body, for recognising ``nn.EmbeddingBag`` exports.

Used by ``frontend/ops/control.py``. Each body tensor gets a symbolic value: an integer
``base + k`` over the iteration counter i (``Int``), an element ``X[i + j]`` of a top-level
tensor, a row segment ``src[lo:hi]`` (``Seg``), gathered rows ``table[idx[lo:hi]] * w``
(``Rows``), a reduction of them (``Bag``) or a comparison/guard (``Op``). A node that does
not fit raises :class:`NoMatch` naming it. The top-level facts a Bag relies on (the last
bag's end, the trip count) are recorded on it and proved by the caller.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from frontend.registry import LoweringContext


class NoMatch(Exception):
    """The Loop is not an EmbeddingBag; the message says why."""


# ----------------------------------------------------------------------------- symbolic values
@dataclass(frozen=True)
class Int:
    """Integer scalar (or 1-element tensor) ``base + k``: base ("const",), ("i",) iteration,
    ("elem", X, j) = X[i + j], ("len", A) = len(A), ("outer", name) = top-level tensor."""

    base: tuple
    k: int = 0


@dataclass(frozen=True, eq=False)
class Const:
    value: Any  # np.ndarray, compared by identity


@dataclass(frozen=True)
class Outer:
    name: str


@dataclass(frozen=True)
class Seg:
    """Rows ``src[lo:hi]`` of a top-level tensor (``col``: unsqueezed to [n, 1])."""

    src: str
    lo: Int
    hi: Int
    col: bool = False


@dataclass(frozen=True)
class Rows:
    """``table[idx[lo:hi]]`` times ``weights[lo:hi]`` (if any)."""

    table: str
    idx: str
    lo: Int
    hi: Int
    weights: str | None = None


@dataclass(frozen=True)
class Bag:
    mode: str
    rows: Seg | Rows
    keepdims: int
    guarded: bool = False  # empty bag -> zeros by an explicit If


@dataclass(frozen=True)
class Op:
    """Any other symbolic result: kind in eq, gt, lt, count (a - b), fcount, cond_in, seq, insert."""

    kind: str
    args: tuple = ()


def as_int(value) -> Int | None:
    if isinstance(value, Int):
        return value
    if isinstance(value, Outer):
        return Int(("outer", value.name))
    if isinstance(value, Const) and value.value.size == 1 and value.value.dtype.kind in "iu":
        return Int(("const",), int(value.value.reshape(-1)[0]))
    return None


def const_ints(value) -> list[int] | None:
    if isinstance(value, Const) and value.value.dtype.kind in "iu":
        return [int(v) for v in value.value.reshape(-1)]
    return None


@dataclass
class Scope:
    graph: onnx.GraphProto
    parent: "Scope | None"
    bound: dict[str, Any]
    memo: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.producers = {out: node for node in self.graph.node for out in node.output}
        self.inits = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}


class Eval:
    """Symbolic evaluation of a Loop body (and its If branches).

    ``last_ends``: Ints that the last bag's end must equal (a branch taken only for the last
    bag slices or divides up to them); ``last_counts``: the N (as Ints) of ``i == N - 1`` tests,
    which must equal the number of bags. The caller proves both.
    """

    def __init__(self, ctx: LoweringContext) -> None:
        self.ctx = ctx
        self.last_ends: list[Int] = []
        self.last_counts: list[Int] = []

    def value(self, scope: Scope, name: str):
        if not name:
            return None
        if name in scope.memo:
            return scope.memo[name]
        if name in scope.bound:
            result = scope.bound[name]
        elif name in scope.producers:
            node = scope.producers[name]
            outs = self.node(scope, node)
            for out, val in zip(node.output, outs):
                scope.memo[out] = val
            return scope.memo[name]
        elif name in scope.inits:
            result = Const(scope.inits[name])
        elif scope.parent is not None:
            result = self.value(scope.parent, name)
        else:
            const = self.ctx.constant(name)
            result = Outer(name) if const is None else Const(np.asarray(const))
        scope.memo[name] = result
        return result

    def node(self, scope: Scope, node: onnx.NodeProto) -> list:
        args = [self.value(scope, name) for name in node.input]
        attrs = self.ctx.attrs(node)  # schema defaults at the model's opset, as in the rules
        handler = getattr(self, f"_op_{node.op_type}", None)
        result = handler(scope, node, args, attrs) if handler else None
        if result is None:
            raise NoMatch(f"unexpected {node.op_type} node {node.name or node.output[0]!r} in the body")
        return result if isinstance(result, list) else [result]

    # ---- value-preserving wrappers
    def _op_Identity(self, scope, node, args, attrs):
        return args[0]

    def _op_Cast(self, scope, node, args, attrs):
        x = args[0]
        if isinstance(x, Const):
            return Const(x.value.astype(helper.tensor_dtype_to_np_dtype(attrs["to"])))
        if isinstance(x, Op) and x.kind == "count" and attrs["to"] == onnx.TensorProto.FLOAT:
            return Op("fcount", (x,))
        return x if isinstance(x, (Int, Bag, Op)) else None

    def _op_CastLike(self, scope, node, args, attrs):
        x, like = args
        if isinstance(x, Const) and isinstance(like, Const):
            return Const(x.value.astype(like.value.dtype))
        if isinstance(x, Const) and x.value.dtype.kind in "iu" and isinstance(like, (Int, Op)):
            return Const(x.value.astype(np.int64))  # integer constant cast like a counter/index
        return x if isinstance(x, (Int, Op)) else None

    def _op_Constant(self, scope, node, args, attrs):
        for key in ("value", "value_int", "value_ints", "value_float", "value_floats"):
            if key in attrs:
                return Const(np.asarray(attrs[key]))
        return None

    def _reshaping(self, node, args, fn):
        if all(isinstance(a, Const) or a is None for a in args):
            return Const(fn(*[None if a is None else a.value for a in args]))
        x = args[0]
        if isinstance(x, Int):
            return x
        return None

    def _op_Reshape(self, scope, node, args, attrs):
        return self._reshaping(node, args, lambda x, s: np.reshape(x, [int(d) for d in s]))

    def _op_Squeeze(self, scope, node, args, attrs):
        return self._reshaping(node, args, lambda x, a=None: np.squeeze(x, None if a is None else tuple(a)))

    def _op_Unsqueeze(self, scope, node, args, attrs):
        axes = const_ints(args[1]) if len(args) > 1 else list(attrs.get("axes", []))
        if isinstance(args[0], Seg) and not args[0].col and axes in ([1], [-1]):
            return replace(args[0], col=True)
        return self._reshaping(node, args[:1], lambda x: np.expand_dims(x, tuple(axes)))

    # ---- integer arithmetic
    def _op_Add(self, scope, node, args, attrs):
        a, b = as_int(args[0]), as_int(args[1])
        if a is None or b is None:
            return None
        if b.base == ("const",):
            return Int(a.base, a.k + b.k)
        if a.base == ("const",):
            return Int(b.base, b.k + a.k)
        return None

    def _op_Sub(self, scope, node, args, attrs):
        a, b = as_int(args[0]), as_int(args[1])
        if a is None or b is None:
            return None
        if b.base == ("const",):
            return Int(a.base, a.k - b.k)
        return Op("count", (a, b))

    def _op_Shape(self, scope, node, args, attrs):
        x = args[0]
        start, end = int(attrs.get("start", 0)), attrs.get("end")
        rank = len(self.ctx.shape(x.name) or ()) if isinstance(x, Outer) else None
        if isinstance(x, Outer) and start == 0 and (end == 1 or (end is None and rank == 1)):
            return Int(("len", x.name))
        return None

    # ---- comparisons
    def _op_Equal(self, scope, node, args, attrs):
        a, b = as_int(args[0]), as_int(args[1])
        return None if a is None or b is None else Op("eq", (a, b))

    def _op_Greater(self, scope, node, args, attrs):
        zero = const_ints(args[1])
        return Op("gt0", (args[0],)) if isinstance(args[0], Op) and zero == [0] else None

    def _op_Less(self, scope, node, args, attrs):
        a, b = as_int(args[0]), as_int(args[1])
        return None if a is None or b is None else Op("lt", (a, b))

    # ---- indexing
    def _op_Gather(self, scope, node, args, attrs):
        data, index = args
        if int(attrs.get("axis", 0)) != 0 or not isinstance(data, Outer):
            return None
        i = as_int(index)
        if i is not None and i.base == ("i",):
            return Int(("elem", data.name, i.k))
        if isinstance(index, Seg) and not index.col:
            return Rows(data.name, index.src, index.lo, index.hi)
        return None

    def _op_Slice(self, scope, node, args, attrs):
        data = args[0]
        axes = const_ints(args[3]) if len(args) > 3 and args[3] is not None else [0]
        steps = const_ints(args[4]) if len(args) > 4 and args[4] is not None else [1]
        lo, hi = as_int(args[1]), as_int(args[2])
        if not isinstance(data, Outer) or axes not in ([0], [-1]) or steps != [1] or lo is None or hi is None:
            return None
        if axes == [-1] and len(self.ctx.shape(data.name) or (0, 0)) != 1:
            return None
        if lo.base == ("i",) and hi.base == ("i",) and hi.k == lo.k + 1:
            return Int(("elem", data.name, lo.k))
        if lo.base[0] == "elem" and lo.k == 0 and (hi.k == 0 or hi.base == ("const",)):
            return Seg(data.name, lo, hi)
        return None

    def _op_Mul(self, scope, node, args, attrs):
        for rows, seg in (args, args[::-1]):
            if (isinstance(rows, Rows) and rows.weights is None and isinstance(seg, Seg) and seg.col
                    and (seg.lo, seg.hi) == (rows.lo, rows.hi)):
                return replace(rows, weights=seg.src)
        return None

    # ---- reductions and guards
    def _reduce(self, mode, node, args, attrs):
        axes = const_ints(args[1]) if len(args) > 1 and args[1] is not None else attrs.get("axes")
        rows = args[0]
        if axes is None or [int(a) for a in axes] != [0] or not isinstance(rows, (Seg, Rows)):
            return None
        if isinstance(rows, Seg) and rows.col:
            return None
        return Bag(mode, rows, int(attrs.get("keepdims", 1)))

    def _op_ReduceSum(self, scope, node, args, attrs):
        return self._reduce("sum", node, args, attrs)

    def _op_ReduceMean(self, scope, node, args, attrs):
        return self._reduce("mean", node, args, attrs)

    def _op_ReduceMax(self, scope, node, args, attrs):
        return self._reduce("max", node, args, attrs)

    def _op_Div(self, scope, node, args, attrs):
        bag, denom = args
        if not (isinstance(bag, Bag) and bag.mode == "sum" and isinstance(denom, Op) and denom.kind == "fcount"):
            return None
        end, start = denom.args[0].args
        if start != bag.rows.lo:
            return None
        self.last_ends.append(end)  # sum / (end - lo) is the mean only if end == hi
        return replace(bag, mode="mean")

    def _op_If(self, scope, node, args, attrs):
        cond = args[0]
        then = self.value(Scope(attrs["then_branch"], scope, {}), attrs["then_branch"].output[0].name)
        other = self.value(Scope(attrs["else_branch"], scope, {}), attrs["else_branch"].output[0].name)
        if not isinstance(cond, Op):
            return None
        bounds = (other.rows.lo, other.rows.hi) if isinstance(other, Bag) else None
        if cond.kind == "eq" and bounds and cond.args in (bounds, bounds[::-1]):
            # if start == end: zeros of the item's shape ([1, D] with keepdims, else [D])
            zeros = (isinstance(then, Const) and then.value.dtype.kind == "f" and not then.value.any()
                     and then.value.ndim == 1 + other.keepdims and then.value.shape[0] >= 1
                     and (not other.keepdims or then.value.shape[0] == 1))
            return replace(other, guarded=True) if zeros else None
        if cond.kind == "gt0" and isinstance(then, Bag) and isinstance(other, Bag):
            count = cond.args[0]
            if (count.kind == "count" and then.mode == "mean" and other.mode == "sum"
                    and then.rows == other.rows and count.args[1] == then.rows.lo):
                return then  # count <= 0 only for an empty bag: sum == mean == 0
            return None
        if cond.kind == "eq" and type(then) is type(other) and isinstance(then, (Bag, Seg)):
            i, last = cond.args  # if i == N - 1 (the last bag): then-branch may end at another bound
            if i != Int(("i",)) or last.base[0] not in ("outer", "const"):
                return None
            then_seg, other_seg = (then.rows, other.rows) if isinstance(then, Bag) else (then, other)
            if replace(then, **({"rows": replace(then_seg, hi=other_seg.hi)} if isinstance(then, Bag)
                                else {"hi": other_seg.hi})) != other:
                return None
            if then_seg.hi != other_seg.hi:
                self.last_ends.append(then_seg.hi)
            self.last_counts.append(Int(last.base, last.k + 1))
            return other
        return None

    def _op_SequenceInsert(self, scope, node, args, attrs):
        if len(args) != 2 or not isinstance(args[1], Bag):
            return None
        return Op("insert", (args[0], args[1]))


