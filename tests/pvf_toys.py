"""Small hand-built IR programs for the PVF tests (no frontend needed)."""
from __future__ import annotations

import numpy as np

from accelsim.ir import Instruction, Parameter, Program, TensorSpec


def mlp(seed: int = 0, dims: tuple[int, ...] = (20, 32, 16, 10), sigmoid_out: bool = False) -> Program:
    """gemm(+bias, trans_b) -> relu chain; optional sigmoid output (a CTR-like model)."""
    rng = np.random.default_rng(seed)
    params, values, insts = {}, {}, []
    x = "x"
    for i in range(len(dims) - 1):
        w, b = f"fc{i}.weight", f"fc{i}.bias"
        comp = f"top_mlp.{i}" if i else "bottom_mlp.0"
        params[w] = Parameter(w, (dims[i + 1], dims[i]), comp, "weight", 0)
        params[b] = Parameter(b, (dims[i + 1],), comp, "bias", 0)
        values[w] = (rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i])).astype(np.float32)
        values[b] = (0.1 * rng.standard_normal(dims[i + 1])).astype(np.float32)
        y = f"h{i}"
        insts.append(Instruction("gemm", f"gemm{i}", (x, w, b), (y,),
                                 dict(alpha=1.0, beta=1.0, trans_a=0, trans_b=1)))
        if i < len(dims) - 2:
            insts.append(Instruction("relu", f"relu{i}", (y,), (y + "r",)))
            y = y + "r"
        x = y
    if sigmoid_out:
        insts.append(Instruction("sigmoid", "sig", (x,), ("prob",)))
        x = "prob"
    return Program(inputs=(TensorSpec("x", "float32", ("batch", dims[0])),),
                   outputs=(TensorSpec(x, "float32", ("batch", dims[-1])),),
                   parameters=params, parameter_values=values, constants={},
                   instructions=tuple(insts), name="mlp")


def cnn(seed: int = 0) -> Program:
    """conv(pad, bias) -> relu -> maxpool -> grouped strided dilated conv -> relu -> GAP."""
    rng = np.random.default_rng(seed)
    params = {
        "conv1.weight": Parameter("conv1.weight", (4, 3, 3, 3), "conv1", "weight", 0),
        "conv1.bias": Parameter("conv1.bias", (4,), "conv1", "bias", 0),
        "conv2.weight": Parameter("conv2.weight", (6, 2, 3, 3), "layer1.0.conv2", "weight", 0),
    }
    values = {k: (0.5 * rng.standard_normal(p.shape)).astype(np.float32) for k, p in params.items()}
    insts = [
        Instruction("conv", "c1", ("x", "conv1.weight", "conv1.bias"), ("y1",),
                    dict(strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1)),
        Instruction("relu", "r1", ("y1",), ("y1r",)),
        Instruction("max_pool", "p1", ("y1r",), ("p1",),
                    dict(kernel_shape=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), dilations=(1, 1),
                         ceil_mode=0, count_include_pad=0, storage_order=0)),
        Instruction("conv", "c2", ("p1", "conv2.weight", ""), ("y2",),
                    dict(strides=(2, 1), pads=(0, 1, 1, 0), dilations=(1, 2), group=2)),
        Instruction("relu", "r2", ("y2",), ("y2r",)),
        Instruction("global_avg_pool", "gap", ("y2r",), ("out",)),
    ]
    return Program(inputs=(TensorSpec("x", "float32", ("batch", 3, 8, 8)),),
                   outputs=(TensorSpec("out", "float32", ("batch", 6, 1, 1)),),
                   parameters=params, parameter_values=values, constants={},
                   instructions=tuple(insts), name="cnn")


def tied(seed: int = 0) -> Program:
    """The same [16,16] weight read by two matmuls (tied weights), plus a layer_norm scale."""
    rng = np.random.default_rng(seed)
    params = {
        "shared.weight": Parameter("shared.weight", (16, 16), "shared", "weight", 1),
        "norm.scale": Parameter("norm.scale", (16,), "norm", "norm_scale", None),
        "head.weight": Parameter("head.weight", (16, 5), "classifier", "weight", 1),
    }
    values = {
        "shared.weight": (rng.standard_normal((16, 16)) / 4).astype(np.float32),
        "norm.scale": (1 + 0.1 * rng.standard_normal(16)).astype(np.float32),
        "head.weight": (rng.standard_normal((16, 5)) / 4).astype(np.float32),
    }
    insts = [
        Instruction("matmul", "m1", ("x", "shared.weight"), ("a",)),
        Instruction("tanh", "t1", ("a",), ("at",)),
        Instruction("matmul", "m2", ("at", "shared.weight"), ("b",)),
        Instruction("add", "res", ("b", "x"), ("c",)),
        Instruction("layer_norm", "ln", ("c", "norm.scale", ""), ("d",), dict(axis=-1, epsilon=1e-5)),
        Instruction("matmul", "head", ("d", "head.weight"), ("logits",)),
    ]
    return Program(inputs=(TensorSpec("x", "float32", ("batch", 16)),),
                   outputs=(TensorSpec("logits", "float32", ("batch", 5)),),
                   parameters=params, parameter_values=values, constants={},
                   instructions=tuple(insts), name="tied")


def inputs_for(program: Program, batch: int = 32, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for spec in program.inputs:
        shape = tuple(batch if isinstance(d, str) else d for d in spec.shape)
        out[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def dlrm(seed: int = 0, batch: int = 32) -> tuple[Program, dict[str, np.ndarray]]:
    """DLRM-like: bottom MLP, a Gather+ReduceSum table, an embedding_bag table, top MLP, sigmoid."""
    rng = np.random.default_rng(seed)
    p = {
        "bot.weight": Parameter("bot.weight", (6, 4), "bottom_mlp.0", "weight", 0),
        "bot.bias": Parameter("bot.bias", (6,), "bottom_mlp.0", "bias", 0),
        "emb0.weight": Parameter("emb0.weight", (50, 6), "embedding.table0", "embedding", 0),
        "emb1.weight": Parameter("emb1.weight", (40, 6), "embedding.table1", "embedding", 0),
        "top.weight": Parameter("top.weight", (18, 1), "top_mlp.0", "weight", 1),
        "top.bias": Parameter("top.bias", (1,), "top_mlp.0", "bias", 0),
    }
    v = {k: (0.5 * rng.standard_normal(q.shape)).astype(np.float32) for k, q in p.items()}
    insts = [
        Instruction("gemm", "bot", ("dense", "bot.weight", "bot.bias"), ("b0",),
                    dict(alpha=1.0, beta=1.0, trans_a=0, trans_b=1)),
        Instruction("relu", "bot_relu", ("b0",), ("b1",)),
        Instruction("gather", "g0", ("emb0.weight", "idx0"), ("e0",), dict(axis=0)),
        Instruction("reduce_sum", "s0", ("e0",), ("e0s",), dict(axes=(1,), keepdims=0)),
        Instruction("embedding_bag", "bag1", ("emb1.weight", "ind1", "off1"), ("e1",),
                    dict(mode="sum", include_last_offset=False, empty_value=0.0)),
        Instruction("concat", "cat", ("b1", "e0s", "e1"), ("z",), dict(axis=1)),
        Instruction("matmul", "top", ("z", "top.weight"), ("t0",)),
        Instruction("add", "top_bias", ("t0", "top.bias"), ("t1",)),
        Instruction("sigmoid", "prob", ("t1",), ("ctr",)),
    ]
    program = Program(
        inputs=(TensorSpec("dense", "float32", ("batch", 4)), TensorSpec("idx0", "int64", ("batch", 3)),
                TensorSpec("ind1", "int64", ("L",)), TensorSpec("off1", "int64", ("batch",))),
        outputs=(TensorSpec("ctr", "float32", ("batch", 1)),),
        parameters=p, parameter_values=v, constants={}, instructions=tuple(insts), name="dlrm_toy")
    lengths = rng.integers(0, 5, size=batch)
    inputs = {
        "dense": rng.standard_normal((batch, 4)).astype(np.float32),
        "idx0": rng.integers(0, 50, size=(batch, 3)).astype(np.int64),
        "ind1": rng.integers(0, 40, size=int(lengths.sum())).astype(np.int64),
        "off1": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
    }
    return program, inputs


def attention(seed: int = 0, seq: int = 6, hidden: int = 8, heads: int = 2, classes: int = 3) -> Program:
    """A BERT-shaped encoder block with the legacy exporter's shape arithmetic.

    x [B, S, H] -> Q/K/V projections, head split by Reshape to a target computed from
    ``Shape(x)`` (Shape -> Gather -> Unsqueeze -> Concat), attention (batched MatMul, Mul by
    the scale, Softmax), head merge (Transpose + Reshape to a computed [B, S, H]), output
    projection + bias, residual, LayerNorm, an FFN run on the flattened [B·S, H] rows (Reshape
    to [-1, H], Gemm, GELU, Reshape back through shape arithmetic), residual, LayerNorm, the
    first token pooled (Gather on axis 1) and a Gemm classifier.
    """
    rng = np.random.default_rng(seed)
    d = hidden // heads
    shapes = {"wq": (hidden, hidden), "wk": (hidden, hidden), "wv": (hidden, hidden), "wo": (hidden, hidden),
              "bo": (hidden,), "ln1.g": (hidden,), "ln1.b": (hidden,), "w1": (4 * hidden, hidden),
              "b1": (4 * hidden,), "w2": (hidden, 4 * hidden), "ln2.g": (hidden,), "ln2.b": (hidden,),
              "cls.w": (classes, hidden), "cls.b": (classes,)}
    roles = {"g": "norm_scale", "b": "norm_bias"}
    params = {k: Parameter(k, s, "classifier" if k.startswith("cls") else "encoder.layer.0",
                           roles.get(k.split(".")[-1], "bias" if k.startswith("b") or k.endswith(".b") else "weight"),
                           None if len(s) == 1 else 0) for k, s in shapes.items()}
    values = {k: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32) for k, s in shapes.items()}
    values["ln1.g"] += 1
    values["ln2.g"] += 1
    consts = {"zero": np.array([0], np.int64), "seq_heads_d": np.array([seq, heads, d], np.int64),
              "seq_hidden": np.array([seq, hidden], np.int64), "flat": np.array([-1, hidden], np.int64),
              "seq_ffn": np.array([seq, 4 * hidden], np.int64), "scale": np.array(1 / np.sqrt(d), np.float32),
              "first": np.array(0, np.int64)}
    gemm_t = dict(alpha=1.0, beta=1.0, trans_a=0, trans_b=1)
    I = Instruction  # noqa: E741
    insts = [
        I("shape", "shape", ("x",), ("xs",), dict(start=0, end=None)),
        I("gather", "batch_dim", ("xs", "zero"), ("b1d",), dict(axis=0)),
        I("concat", "heads_shape", ("b1d", "seq_heads_d"), ("hshape",), dict(axis=0)),
        I("concat", "merged_shape", ("b1d", "seq_hidden"), ("mshape",), dict(axis=0)),
        I("concat", "ffn_shape", ("b1d", "seq_ffn"), ("fshape",), dict(axis=0)),
    ]
    for name, perm in (("q", (0, 2, 1, 3)), ("k", (0, 2, 3, 1)), ("v", (0, 2, 1, 3))):
        insts += [I("matmul", f"{name}_proj", ("x", f"w{name}"), (f"{name}0",)),
                  I("reshape", f"{name}_split", (f"{name}0", "hshape"), (f"{name}1",), dict(allowzero=0)),
                  I("transpose", f"{name}_t", (f"{name}1",), (f"{name}h",), dict(perm=perm))]
    insts += [
        I("matmul", "scores", ("qh", "kh"), ("s0",)),
        I("mul", "scaled", ("s0", "scale"), ("s1",)),
        I("softmax", "probs", ("s1",), ("p",), dict(axes=(-1,))),
        I("matmul", "context", ("p", "vh"), ("c0",)),
        I("transpose", "c_t", ("c0",), ("c1",), dict(perm=(0, 2, 1, 3))),
        I("reshape", "c_merge", ("c1", "mshape"), ("c2",), dict(allowzero=0)),
        I("matmul", "o_proj", ("c2", "wo"), ("o0",)),
        I("add", "o_bias", ("o0", "bo"), ("o1",)),
        I("add", "res1", ("o1", "x"), ("r1",)),
        I("layer_norm", "ln1", ("r1", "ln1.g", "ln1.b"), ("h1",), dict(axis=-1, epsilon=1e-5)),
        I("reshape", "flatten_rows", ("h1", "flat"), ("h1f",), dict(allowzero=0)),
        I("gemm", "ffn1", ("h1f", "w1", "b1"), ("f0",), gemm_t),
        I("gelu", "act", ("f0",), ("f1",), dict(approximate="none")),
        I("reshape", "unflatten", ("f1", "fshape"), ("f2",), dict(allowzero=0)),
        I("matmul", "ffn2", ("f2", "w2_t"), ("f3",)),
        I("add", "res2", ("f3", "h1"), ("r2",)),
        I("layer_norm", "ln2", ("r2", "ln2.g", "ln2.b"), ("h2",), dict(axis=-1, epsilon=1e-5)),
        I("gather", "pool", ("h2", "first"), ("cls",), dict(axis=1)),
        I("gemm", "classifier", ("cls", "cls.w", "cls.b"), ("logits",), gemm_t),
    ]
    insts.insert(len(insts) - 5, I("transpose", "w2_transpose", ("w2",), ("w2_t",), dict(perm=(1, 0))))
    return Program(inputs=(TensorSpec("x", "float32", ("batch", seq, hidden)),),
                   outputs=(TensorSpec("logits", "float32", ("batch", classes)),),
                   parameters=params, parameter_values=values, constants=consts,
                   instructions=tuple(insts), name="attention")
