"""IR programs with the layer shapes of the zoo models, built directly (no ONNX), for the
schedule benchmark when a zoo model is not built: the schedule only needs shapes and the
looked-up embedding rows, so random weights are enough.

``bert(layers, hidden, heads, ffn, seq, batch, vocab)`` has BERT's encoder structure
(embedding lookups, Q/K/V/O projections with biases, two attention matmuls per layer, softmax,
GELU FFN, residual adds, layer norms, classifier); ``bert_base()`` uses BERT-base sizes
(12 × 768, 12 heads, FFN 3072, vocab 30522, seq 128).
"""
from __future__ import annotations

import numpy as np

from accelsim.ir import Instruction, Parameter, Program, TensorSpec


def bert(layers: int, hidden: int, heads: int, ffn: int, seq: int, batch: int, vocab: int,
         classes: int = 2, seed: int = 0) -> tuple[Program, dict[str, tuple], dict[str, np.ndarray]]:
    """(program, shapes, index_values) of a BERT-shaped encoder classifier."""
    rng = np.random.default_rng(seed)
    params: dict[str, Parameter] = {}
    values: dict[str, np.ndarray] = {}
    insts: list[Instruction] = []
    shapes: dict[str, tuple] = {"ids": (batch, seq)}
    dh = hidden // heads

    def param(name, shape, component, role="weight"):
        params[name] = Parameter(name, shape, component, role)
        values[name] = np.zeros(shape, dtype=np.float32)
        return name

    def op(kind, name, inputs, shape, **attrs):
        out = f"{name}.out"
        insts.append(Instruction(kind, name, tuple(inputs), (out,), attrs))
        shapes[out] = shape
        return out

    tokens = (batch, seq, hidden)
    x = op("gather", "embeddings.word", [param("word_emb", (vocab, hidden), "embedding.word", "embedding"), "ids"],
           tokens, axis=0)
    x = op("add", "embeddings.pos", [x, param("pos_emb", (seq, hidden), "embedding.position", "embedding")], tokens)
    x = op("layer_norm", "embeddings.ln", [x, param("emb_ln.g", (hidden,), "embedding.ln", "norm_scale"),
                                           param("emb_ln.b", (hidden,), "embedding.ln", "norm_bias")],
           tokens, axis=-1, epsilon=1e-12)
    for i in range(layers):
        p = f"encoder.{i}"

        def linear(name, inp, n_in, n_out, component):
            y = op("matmul", f"{p}.{name}", [inp, param(f"{p}.{name}.w", (n_in, n_out), component)],
                   (batch, seq, n_out))
            return op("add", f"{p}.{name}.bias", [y, param(f"{p}.{name}.b", (n_out,), component, "bias")],
                      (batch, seq, n_out))

        heads_shape = (batch, heads, seq, dh)
        q = linear("query", x, hidden, hidden, f"{p}.attention.query")
        k = linear("key", x, hidden, hidden, f"{p}.attention.key")
        v = linear("value", x, hidden, hidden, f"{p}.attention.value")
        q = op("transpose", f"{p}.q_t", [op("reshape", f"{p}.q_r", [q], (batch, seq, heads, dh))], heads_shape, perm=(0, 2, 1, 3))
        k = op("transpose", f"{p}.k_t", [op("reshape", f"{p}.k_r", [k], (batch, seq, heads, dh))],
               (batch, heads, dh, seq), perm=(0, 2, 3, 1))
        v = op("transpose", f"{p}.v_t", [op("reshape", f"{p}.v_r", [v], (batch, seq, heads, dh))], heads_shape, perm=(0, 2, 1, 3))
        s = op("matmul", f"{p}.scores", [q, k], (batch, heads, seq, seq))
        s = op("softmax", f"{p}.softmax", [s], (batch, heads, seq, seq), axis=-1)
        c = op("matmul", f"{p}.context", [s, v], heads_shape)
        c = op("reshape", f"{p}.c_r", [op("transpose", f"{p}.c_t", [c], (batch, seq, heads, dh), perm=(0, 2, 1, 3))], tokens)
        o = linear("attention_out", c, hidden, hidden, f"{p}.attention.output")
        x = op("layer_norm", f"{p}.ln1", [op("add", f"{p}.res1", [o, x], tokens),
                                          param(f"{p}.ln1.g", (hidden,), f"{p}.attention.ln", "norm_scale"),
                                          param(f"{p}.ln1.b", (hidden,), f"{p}.attention.ln", "norm_bias")],
               tokens, axis=-1, epsilon=1e-12)
        h = op("gelu", f"{p}.gelu", [linear("ffn_in", x, hidden, ffn, f"{p}.ffn.in")], (batch, seq, ffn), approximate="none")
        o = linear("ffn_out", h, ffn, hidden, f"{p}.ffn.out")
        x = op("layer_norm", f"{p}.ln2", [op("add", f"{p}.res2", [o, x], tokens),
                                          param(f"{p}.ln2.g", (hidden,), f"{p}.ffn.ln", "norm_scale"),
                                          param(f"{p}.ln2.b", (hidden,), f"{p}.ffn.ln", "norm_bias")],
               tokens, axis=-1, epsilon=1e-12)
    constants = {"cls.starts": np.array([0]), "cls.ends": np.array([1]), "cls.axes": np.array([1])}
    first = op("reshape", "cls_token", [op("slice", "cls", [x, "cls.starts", "cls.ends", "cls.axes"],
                                           (batch, 1, hidden))], (batch, hidden))
    logits = op("gemm", "classifier", [first, param("classifier.w", (classes, hidden), "classifier"),
                                       param("classifier.b", (classes,), "classifier", "bias")],
                (batch, classes), alpha=1.0, beta=1.0, trans_a=0, trans_b=1)
    ids = rng.integers(0, vocab, (batch, seq)).astype(np.int64)
    program = Program((TensorSpec("ids", "int64", (batch, seq)),), (TensorSpec(logits, "float32", (batch, classes)),),
                      params, values, constants, tuple(insts), name="bert_synthetic")
    return program, shapes, {"ids": ids}


def bert_base(batch: int = 1, seq: int = 128):
    return bert(12, 768, 12, 3072, seq, batch, 30522)


def bert_tiny(batch: int = 1, seq: int = 128):
    return bert(4, 312, 12, 1200, seq, batch, 30522)
