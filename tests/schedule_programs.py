"""Hand-built IR programs for the schedule tests, with their activations computed in numpy.

Every program uses small-integer data so that any summation order gives the exact result.
Each builder returns (program, cache) where cache maps every tensor name to its value.
"""
from __future__ import annotations

import numpy as np

from accelsim.ir import Instruction, Parameter, Program, TensorSpec


def _ints(rng, shape, lo=-3, hi=4):
    return rng.integers(lo, hi, shape).astype(np.float32)


def _program(inputs, outputs, params, values, insts, constants=None):
    specs_in = tuple(TensorSpec(n, "float32" if v.dtype.kind == "f" else str(v.dtype), v.shape)
                     for n, v in inputs.items())
    specs_out = tuple(TensorSpec(n, "float32", v.shape) for n, v in outputs.items())
    return Program(specs_in, specs_out, params, values, constants or {}, tuple(insts))


def mlp(batch=10, k=20, hidden=12, out=7, seed=0):
    """gemm(x, w1, b1) -> relu -> gemm(h, w2ᵀ (trans_b), b2)."""
    rng = np.random.default_rng(seed)
    x = _ints(rng, (batch, k))
    w1, b1 = _ints(rng, (k, hidden)), _ints(rng, (hidden,))
    w2, b2 = _ints(rng, (out, hidden)), _ints(rng, (out,))
    h = x @ w1 + b1
    r = np.maximum(h, 0)
    y = r @ w2.T + b2
    params = {"fc1.w": Parameter("fc1.w", w1.shape, "fc1", "weight", 1),
              "fc1.b": Parameter("fc1.b", b1.shape, "fc1", "bias", 0),
              "fc2.w": Parameter("fc2.w", w2.shape, "fc2", "weight", 0),
              "fc2.b": Parameter("fc2.b", b2.shape, "fc2", "bias", 0)}
    attrs = {"alpha": 1.0, "beta": 1.0, "trans_a": 0, "trans_b": 0}
    insts = [Instruction("gemm", "fc1", ("x", "fc1.w", "fc1.b"), ("h",), attrs),
             Instruction("relu", "act", ("h",), ("r",)),
             Instruction("gemm", "fc2", ("r", "fc2.w", "fc2.b"), ("y",), {**attrs, "trans_b": 1})]
    prog = _program({"x": x}, {"y": y}, params, {"fc1.w": w1, "fc1.b": b1, "fc2.w": w2, "fc2.b": b2}, insts)
    return prog, {"x": x, "h": h, "r": r, "y": y}


def _conv_ref(x, w, b, stride, pad, group):
    n, c, hh, ww = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (hh + 2 * pad - kh) // stride + 1, (ww + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, oh, ow), dtype=np.float64)
    og = o // group
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg, i * stride:i * stride + kh, j * stride:j * stride + kw]
                y[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3)) + b[oc]
    return y.astype(np.float32)


def convnet(seed=1):
    """conv(3->8, 3x3, pad 1) -> relu -> grouped conv(8->8, 3x3, stride 2, group 2) -> flatten
    -> matmul with a transposed parameter (transpose op feeding the weight)."""
    rng = np.random.default_rng(seed)
    x = _ints(rng, (2, 3, 9, 9), -2, 3)
    w1, b1 = _ints(rng, (8, 3, 3, 3), -2, 3), _ints(rng, (8,))
    w2, b2 = _ints(rng, (8, 4, 3, 3), -2, 3), _ints(rng, (8,))
    w3 = _ints(rng, (5, 200), -2, 3)
    c1 = _conv_ref(x, w1, b1, 1, 1, 1)
    r1 = np.maximum(c1, 0)
    c2 = _conv_ref(r1, w2, b2, 2, 1, 2)
    f = c2.reshape(2, -1)
    w3t = w3.T
    y = f @ w3t
    params = {"conv1.w": Parameter("conv1.w", w1.shape, "conv1", "weight", 0),
              "conv1.b": Parameter("conv1.b", b1.shape, "conv1", "bias", 0),
              "conv2.w": Parameter("conv2.w", w2.shape, "conv2", "weight", 0),
              "conv2.b": Parameter("conv2.b", b2.shape, "conv2", "bias", 0),
              "fc.w": Parameter("fc.w", w3.shape, "fc", "weight", 0)}
    conv_attrs = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 1}
    insts = [Instruction("conv", "conv1", ("x", "conv1.w", "conv1.b"), ("c1",), conv_attrs),
             Instruction("relu", "relu1", ("c1",), ("r1",)),
             Instruction("conv", "conv2", ("r1", "conv2.w", "conv2.b"), ("c2",),
                         {**conv_attrs, "strides": (2, 2), "group": 2}),
             Instruction("flatten", "flat", ("c2",), ("f",), {"axis": 1}),
             Instruction("transpose", "fc.wT", ("fc.w",), ("w3t",), {"perm": (1, 0)}),
             Instruction("matmul", "fc", ("f", "w3t"), ("y",))]
    values = {"conv1.w": w1, "conv1.b": b1, "conv2.w": w2, "conv2.b": b2, "fc.w": w3}
    prog = _program({"x": x}, {"y": y}, params, values, insts)
    return prog, {"x": x, "c1": c1, "r1": r1, "c2": c2, "f": f, "w3t": w3t, "y": y}


def attention(batch=2, seq=6, dim=8, seed=2):
    """q = x @ Wq, k = x @ Wk, s = q @ kᵀ (two activation operands), o = s @ x, y = o @ Wo."""
    rng = np.random.default_rng(seed)
    x = _ints(rng, (batch, seq, dim), -2, 3)
    wq, wk, wo = (_ints(rng, (dim, dim), -2, 3) for _ in range(3))
    q, k = x @ wq, x @ wk
    kt = np.swapaxes(k, 1, 2)
    s = q @ kt
    o = s @ x
    y = o @ wo
    params = {n: Parameter(n, (dim, dim), n.split(".")[0], "weight", 1) for n in ("q.w", "k.w", "o.w")}
    insts = [Instruction("matmul", "q", ("x", "q.w"), ("q",)),
             Instruction("matmul", "k", ("x", "k.w"), ("k",)),
             Instruction("transpose", "kT", ("k",), ("kt",), {"perm": (0, 2, 1)}),
             Instruction("matmul", "scores", ("q", "kt"), ("s",)),
             Instruction("matmul", "context", ("s", "x"), ("o",)),
             Instruction("matmul", "out", ("o", "o.w"), ("y",))]
    prog = _program({"x": x}, {"y": y}, params, {"q.w": wq, "k.w": wk, "o.w": wo}, insts)
    return prog, {"x": x, "q": q, "k": k, "kt": kt, "s": s, "o": o, "y": y}


def dlrm_like(batch=4, rows=50, dim=8, seed=3):
    """embedding_bag over table0, gather on table1, concat, gemm top layer, layer-norm-like mul."""
    rng = np.random.default_rng(seed)
    t0, t1 = _ints(rng, (rows, dim)), _ints(rng, (rows, dim))
    idx0 = rng.integers(0, rows, 10).astype(np.int64)
    off0 = np.array([0, 3, 3, 7], dtype=np.int64)
    idx1 = rng.integers(0, rows, (batch,)).astype(np.int64)
    bags = np.stack([t0[idx0[a:b]].sum(0) if b > a else np.zeros(dim, np.float32)
                     for a, b in zip(off0, list(off0[1:]) + [len(idx0)])])
    g1 = t1[idx1]
    cat = np.concatenate([bags, g1], axis=1)
    w = _ints(rng, (2 * dim, 3))
    scale = _ints(rng, (3,), 1, 3)
    z = cat @ w
    y = z * scale
    params = {"emb0": Parameter("emb0", t0.shape, "embedding.table0", "embedding"),
              "emb1": Parameter("emb1", t1.shape, "embedding.table1", "embedding"),
              "top.w": Parameter("top.w", w.shape, "top_mlp.0", "weight", 1),
              "top.scale": Parameter("top.scale", scale.shape, "top_mlp.0", "other")}
    insts = [Instruction("embedding_bag", "bag0", ("emb0", "idx0", "off0"), ("bags",), {"mode": "sum"}),
             Instruction("gather", "lookup1", ("emb1", "idx1"), ("g1",), {"axis": 0}),
             Instruction("concat", "cat", ("bags", "g1"), ("cat",), {"axis": 1}),
             Instruction("matmul", "top", ("cat", "top.w"), ("z",)),
             Instruction("mul", "scale", ("z", "top.scale"), ("y",))]
    values = {"emb0": t0, "emb1": t1, "top.w": w, "top.scale": scale}
    prog = _program({"idx0": idx0, "off0": off0, "idx1": idx1}, {"y": y}, params, values, insts)
    cache = {"idx0": idx0, "off0": off0, "idx1": idx1, "bags": bags, "g1": g1, "cat": cat, "z": z, "y": y}
    return prog, cache


def gemm_add_c(batch=4, k=3, n=2, seed=4):
    """gemm(x, w, c) whose C is an activation (a graph input), not a bias parameter."""
    rng = np.random.default_rng(seed)
    x, w, c = _ints(rng, (batch, k)), _ints(rng, (k, n)), _ints(rng, (batch, n))
    y = x @ w + c
    params = {"fc.w": Parameter("fc.w", w.shape, "fc", "weight", 1)}
    attrs = {"alpha": 1.0, "beta": 1.0, "trans_a": 0, "trans_b": 0}
    insts = [Instruction("gemm", "fc", ("x", "fc.w", "c"), ("y",), attrs)]
    prog = _program({"x": x, "c": c}, {"y": y}, params, {"fc.w": w}, insts)
    return prog, {"x": x, "c": c, "y": y}


def shapes_of(cache):
    return {name: tuple(np.shape(v)) for name, v in cache.items()}
