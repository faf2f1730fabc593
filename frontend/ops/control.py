"""Loop (as torch exports ``nn.EmbeddingBag``) -> IR ``embedding_bag``; SequenceEmpty and
ConcatFromSequence around it.

Both torch exporters turn ``nn.EmbeddingBag(indices, offsets)`` into one Loop per table:

* legacy: ``Loop(M = len(X[1:]), True)`` with X = Concat(offsets, [len(indices)]) (or the
  offsets themselves with include_last_offset); the body slices ``indices[X[i]:X[i+1]]``,
  Gathers the table rows (an outer-scope initializer), optionally multiplies per-sample
  weights, and reduces with ReduceSum/ReduceMean/ReduceMax over axis 0 into a scan output;
* dynamo: R = Gather(table, indices) [* per-sample weights] is computed before the Loop; the
  Loop carries a counter and a sequence (SequenceEmpty), runs while ``i < N``, and each
  iteration inserts ``If(X[i] == X[i+1], zeros, Reduce(R[X[i]:X[i+1]]))`` (mean/max add an
  ``If`` for the last bag, which slices up to ``len(indices)``); ConcatFromSequence stacks.

The body is evaluated symbolically (``frontend/ops/_loop_body.py``); this rule then proves on
the already-emitted IR that the trip count equals the number of bags and that the last bag
ends at ``len(indices)`` where the body assumes it, and emits one ``embedding_bag`` reading
the table parameter (claimed as role "embedding", one int8 scale per row). Anything else
fails with ``Loop 'x' is not an EmbeddingBag pattern (why); general Loop is not supported``.
The instructions that only fed the Loop (R, offsets, trip count) are left dead for the
loader's dead-code elimination.
"""
from __future__ import annotations

import numpy as np
import onnx

from frontend.ops._common import node_label
from frontend.ops._loop_body import Bag, Const, Eval, Int, NoMatch, Op, Rows, Scope, Seg
from frontend.registry import FrontendError, LoweringContext, lowering

_BIG = 2**62


def _sequences(ctx: LoweringContext) -> dict:
    """Per-lowering record: sequence tensor -> "empty" or ("bags", tensor, keepdims)."""
    return ctx.__dict__.setdefault("_embedding_bag_sequences", {})


# ----------------------------------------------------------------------------- IR tracing
def _producer(ctx: LoweringContext, name: str):
    for inst in reversed(ctx.instructions):
        if name in inst.outputs:
            return inst
    return None


def _through(ctx: LoweringContext, name: str, ops=("identity",)) -> str:
    while True:
        inst = _producer(ctx, name)
        if inst is None or inst.op not in ops:
            return name
        name = inst.inputs[0]


def _rank(ctx: LoweringContext, name: str) -> int | None:
    shape = ctx.shape(name)
    return None if shape is None else len(shape)


def _ints(ctx: LoweringContext, name: str) -> list[int] | None:
    value = ctx.constant(name) if name else None
    if value is None or np.asarray(value).dtype.kind not in "iu":
        return None
    return [int(v) for v in np.ravel(value)]


def _canon(ctx: LoweringContext, name: str) -> str:
    """Follow identity and reshape(x, [-1]) (both keep the element count)."""
    while True:
        name = _through(ctx, name)
        inst = _producer(ctx, name)
        if inst is None or inst.op != "reshape" or _ints(ctx, inst.inputs[1]) != [-1]:
            return name
        name = inst.inputs[0]


def _numel(ctx: LoweringContext, name: str, delta: int = 0) -> tuple:
    """(token, delta) = numel(token) + delta; a static size becomes ("#", n)."""
    name = _canon(ctx, name)
    shape = ctx.shape(name)
    if shape is not None and all(isinstance(d, int) for d in shape):
        return ("#", int(np.prod(shape, dtype=np.int64)) + delta)
    return (name, delta)


def _shift(value: tuple | None, delta: int) -> tuple | None:
    return None if value is None else (value[0], value[1] + delta)


def _length(ctx: LoweringContext, name: str) -> tuple | None:
    """Length of the 1-D tensor ``name`` as (token, delta), None if unknown."""
    name = _through(ctx, name)
    inst = _producer(ctx, name)
    if inst is not None and inst.op == "concat" and len(inst.inputs) == 2 and inst.attrs["axis"] in (0, -1):
        if ctx.shape(inst.inputs[1]) in ((1,), ()):
            return _shift(_length(ctx, inst.inputs[0]), 1)
    if inst is not None and inst.op == "slice":
        starts, ends, axes, steps = (_ints(ctx, t) for t in inst.inputs[1:])
        if starts == [1] and ends and ends[0] >= _BIG and axes in ([0], [-1]) and steps == [1]:
            return _shift(_length(ctx, inst.inputs[0]), -1)
    return _numel(ctx, name) if _rank(ctx, name) == 1 else None


def _count(ctx: LoweringContext, name: str) -> tuple | None:
    """Integer scalar (or [1]) tensor ``name`` as (token, delta), None if not provable."""
    name = _through(ctx, name, ("identity", "unsqueeze", "squeeze", "reshape"))
    const = _ints(ctx, name)
    if const is not None:
        return ("#", const[0]) if len(const) == 1 else None
    inst = _producer(ctx, name)
    if inst is None:
        return None
    source = inst.inputs[0]
    if inst.op == "size":
        return _length(ctx, source) if _rank(ctx, source) == 1 else _numel(ctx, source)
    if inst.op == "shape" and inst.attrs["start"] == 0 and _rank(ctx, source) == 1:
        return _length(ctx, source)
    if inst.op == "gather" and inst.attrs["axis"] == 0 and _ints(ctx, inst.inputs[1]) == [0]:
        return _count(ctx, source)
    if inst.op in ("add", "sub"):
        step = _ints(ctx, inst.inputs[1])
        if step is not None and len(step) == 1:
            return _shift(_count(ctx, source), step[0] if inst.op == "add" else -step[0])
    return None


def _int_count(ctx: LoweringContext, value: Int) -> tuple | None:
    """A symbolic top-level integer (constant, ``len(A) + k``, tensor + k) as (token, delta)."""
    kind, name = value.base[0], value.base[-1]
    if kind == "const":
        return ("#", value.k)
    if kind == "len":
        return _shift(_length(ctx, name), value.k)
    if kind == "outer":
        return _shift(_count(ctx, name), value.k)
    return None


def _is_ones(ctx: LoweringContext, name: str) -> bool:
    """All-ones constant (a folded per-sample-weight tensor may even be a float initializer)."""
    value = ctx.constant(name)
    if value is None and ctx.is_parameter(name):
        value = ctx.initializers[name]
    if value is None:
        inst = _producer(ctx, _through(ctx, name))
        if inst is None or inst.op != "expand":
            return False
        value = ctx.constant(inst.inputs[0])
    return value is not None and bool(np.all(np.asarray(value) == 1))


# ----------------------------------------------------------------------------- matching
def _offsets_tensor(ctx: LoweringContext, bag: Bag) -> str:
    """X such that bag i spans [X[i], X[i+1])."""
    lo, hi = bag.rows.lo, bag.rows.hi
    if lo.base[0] != "elem" or lo.base[2] != 0 or lo.k or hi.k:
        raise NoMatch("bag start is not offsets[i]")
    x = lo.base[1]
    if hi.base == ("elem", x, 1):
        return x
    inst = _producer(ctx, _through(ctx, hi.base[1])) if hi.base[0] == "elem" and hi.base[2] == 0 else None
    if inst is not None and inst.op == "slice" and _through(ctx, inst.inputs[0]) == _through(ctx, x):
        starts, ends, axes, steps = (_ints(ctx, t) for t in inst.inputs[1:])
        if starts == [1] and ends and ends[0] >= _BIG and axes in ([0], [-1]) and steps == [1]:
            return x  # hi = X[1:][i] = X[i + 1]
    raise NoMatch("bag end is not offsets[i + 1]")


def _rows_source(ctx: LoweringContext, rows: Seg | Rows) -> tuple[str, str, str | None]:
    """(table, indices, per-sample weights or None) of the bag rows."""
    if isinstance(rows, Rows):
        return rows.table, rows.idx, rows.weights
    inst = _producer(ctx, _through(ctx, rows.src))
    if inst is not None and inst.op == "gather" and inst.attrs["axis"] == 0:
        return inst.inputs[0], inst.inputs[1], None
    if inst is not None and inst.op == "mul":
        for g, w in (inst.inputs, inst.inputs[::-1]):
            gather = _producer(ctx, _through(ctx, g))
            if gather is None or gather.op != "gather" or gather.attrs["axis"] != 0:
                continue
            if _is_ones(ctx, w):
                return gather.inputs[0], gather.inputs[1], None
            unsq = _producer(ctx, _through(ctx, w))
            if unsq is not None and unsq.op == "unsqueeze" and unsq.attrs["axes"] in ((1,), (-1,)):
                weights = unsq.inputs[0]
                return gather.inputs[0], gather.inputs[1], None if _is_ones(ctx, weights) else weights
    raise NoMatch(f"rows {rows.src!r} are not Gather(table, indices) [* per-sample weights]")


def _trip_count(ctx: LoweringContext, node: onnx.NodeProto, cond_out) -> tuple | None:
    """Number of iterations as (token, delta): M with a constant-true condition, or N of i < N."""
    trip = node.input[0] if node.input else ""
    cond = node.input[1] if len(node.input) > 1 else ""
    if cond_out == Op("cond_in") or (isinstance(cond_out, Const) and cond_out.value.dtype == bool
                                     and bool(np.all(cond_out.value))):
        start = ctx.constant(cond) if cond else np.array(True)
        if not trip or start is None or not bool(np.all(start)):
            raise NoMatch("loop has no trip count or a run-time condition")
        return _count(ctx, trip)
    if isinstance(cond_out, Op) and cond_out.kind == "lt" and cond_out.args[0] == Int(("i",), 1):
        bound = cond_out.args[1]
        if trip or bound.base[0] not in ("outer", "const") or (bound.base[0] == "outer" and bound.k):
            raise NoMatch("loop condition is not i + 1 < N")
        trips = _int_count(ctx, bound)
        start = ctx.constant(cond) if cond else None
        if start is not None:  # folded 0 < N: only a static N >= 1 makes it constant true
            if not bool(np.all(start)) or trips is None or trips[0] != "#" or trips[1] < 1:
                raise NoMatch("initial loop condition is not 0 < N")
            return trips
        first = _producer(ctx, _through(ctx, cond)) if cond else None
        if (first is None or first.op != "less" or _ints(ctx, first.inputs[0]) != [0]
                or _int_count(ctx, Int(("outer", first.inputs[1]))) != trips):
            raise NoMatch("initial loop condition is not 0 < N")
        return trips
    raise NoMatch("loop condition is neither constant true nor i + 1 < N")


def _match(ctx: LoweringContext, node: onnx.NodeProto) -> dict:
    body = ctx.attrs(node)["body"]
    carried = list(node.input[2:])
    bound = {body.input[0].name: Int(("i",)), body.input[1].name: Op("cond_in")}
    for j, init in enumerate(carried):
        value = _ints(ctx, init)
        if value == [0]:
            bound[body.input[2 + j].name] = Int(("i",))
        elif _sequences(ctx).get(init) == "empty":
            bound[body.input[2 + j].name] = Op("seq")
        else:
            raise NoMatch(f"loop-carried {init!r} is neither a zero counter nor an empty sequence")
    evaluator = Eval(ctx)
    outs = [evaluator.value(Scope(body, None, bound), o.name) for o in body.output]
    n = len(carried)
    bags = []
    for j, value in enumerate(outs[1:1 + n]):
        if bound[body.input[2 + j].name] == Int(("i",)):
            if value != Int(("i",), 1):
                raise NoMatch(f"loop-carried {carried[j]!r} is not incremented by 1")
        elif isinstance(value, Op) and value.kind == "insert" and value.args[0] == Op("seq"):
            bags.append((value.args[1], "seq", j))
        else:
            raise NoMatch("the sequence does not get one reduced bag per iteration")
    for j, value in enumerate(outs[1 + n:]):
        if not isinstance(value, Bag):
            raise NoMatch(f"scan output {body.output[1 + n + j].name!r} is not a reduced bag of rows")
        bags.append((value, "scan", n + j))
    if len(bags) != 1:
        raise NoMatch(f"{len(bags)} reduced bags per iteration, expected 1")
    bag, kind, out_index = bags[0]
    x = _offsets_tensor(ctx, bag)
    nbags = _shift(_length(ctx, x), -1)
    trips = _trip_count(ctx, node, outs[0])
    if nbags is None or trips != nbags:
        raise NoMatch("trip count is not the number of bags")
    for count in evaluator.last_counts:
        if _int_count(ctx, count) != nbags:
            raise NoMatch("the last-bag test does not use the number of bags")
    table, indices, weights = _rows_source(ctx, bag.rows)
    for what, tensor, rank in (("table", table, 2), ("indices", indices, 1), ("weights", weights, 1)):
        if tensor and _rank(ctx, tensor) != rank:
            raise NoMatch(f"{what} {tensor!r} is not known to be {rank}-D")
    head = _producer(ctx, _through(ctx, x))
    tail = _count(ctx, head.inputs[1]) if head is not None and head.op == "concat" and len(head.inputs) == 2 else None
    for end in evaluator.last_ends:
        if tail is None or _int_count(ctx, end) != tail:
            raise NoMatch("the last bag's end is not provably offsets[-1]")
    closed = tail is not None and tail == _length(ctx, indices)
    empty = 0.0 if bag.guarded or bag.mode != "max" else float("-inf")
    return {"bag": bag, "kind": kind, "out_index": out_index, "table": table, "indices": indices,
            "weights": weights, "offsets": head.inputs[0] if closed else x, "last": not closed,
            "empty": empty}


# ----------------------------------------------------------------------------- rules
@lowering("Loop")
def lower_loop(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    name = node.name or node.output[0]
    try:
        m = _match(ctx, node)
    except NoMatch as exc:
        raise FrontendError(
            f"Loop {name!r} is not an EmbeddingBag pattern ({exc}); general Loop is not supported"
        ) from None
    bag = m["bag"]
    if ctx.is_parameter(m["table"]):
        ctx.claim_parameter(m["table"], node, "embedding", channel_axis=0)
    target = node.output[m["out_index"]]
    result = target if m["kind"] == "scan" and not bag.keepdims else ctx.fresh_tensor(f"{name}_bags")
    ctx.emit("embedding_bag", [m["table"], m["indices"], m["offsets"], m["weights"] or ""], [result],
             {"mode": bag.mode, "include_last_offset": bool(m["last"]), "empty_value": m["empty"]},
             name=name)
    if m["kind"] == "seq":
        _sequences(ctx)[target] = ("bags", result, bag.keepdims)
    elif bag.keepdims:
        ctx.emit("unsqueeze", [result], [target], {"axes": (1,)}, name=f"{name}::stack")
    for j, out in enumerate(node.output[: len(node.input) - 2]):
        if j != m["out_index"] and out and ctx.reader_count(out):
            raise FrontendError(f"Loop {name!r}: the final loop counter {out!r} is read; not supported")


@lowering("SequenceEmpty")
def lower_sequence_empty(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Only as the start of an EmbeddingBag Loop's sequence (checked by the Loop rule)."""
    _sequences(ctx)[node.output[0]] = "empty"


@lowering("ConcatFromSequence")
def lower_concat_from_sequence(ctx: LoweringContext, node: onnx.NodeProto) -> None:
    """Stacking the bags of an EmbeddingBag Loop -> the embedding_bag output itself."""
    entry = _sequences(ctx).get(node.input[0])
    if not isinstance(entry, tuple):
        raise FrontendError(
            f"{node_label(node)}: input {node.input[0]!r} is not a sequence built by an EmbeddingBag Loop; "
            "general sequences are not supported"
        )
    _, tensor, keepdims = entry
    attrs = ctx.attrs(node)
    axis, new_axis = int(attrs["axis"]), int(attrs["new_axis"])
    if (keepdims and new_axis == 0 and axis in (0, -2)) or (not keepdims and new_axis == 1 and axis == 0):
        ctx.alias(node.output[0], tensor)
        return
    raise FrontendError(f"{node_label(node)}: attributes axis={axis}, new_axis={new_axis} are not supported")
