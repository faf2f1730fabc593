"""DLRM (reference layout) trained on synthetic clicks from a hidden teacher.

Model (``DLRM``, one-hot lookups, exported as ``dlrm``):
    dense_x    float32 (B, 13)  log1p of skewed counts
    sparse_ids int64   (B, 26)  one categorical id per table, ``sparse_ids[:, k] < rows[k]``
    -> bottom_mlp (13-512-256-64-16, ReLU after every layer) -> x (B, 16)
    -> emb.k lookups (F.embedding -> Gather) -> 26 x (B, 16)
    -> dot interaction: T = [x, e_0..e_25] (B, 27, 16), Z = T T^T, keep the strict lower
       triangle (i > j, 351 pairs, reference order) -> concat [x, Z_tri] (B, 367)
    -> top_mlp (367-512-256-1, ReLU between) -> sigmoid -> ctr float32 (B, 1)

``DLRMBag`` (exported as ``dlrm_bag``) replaces the lookups by ``nn.EmbeddingBag(mode="sum")``
over ragged multi-hot bags with the reference DLRM's input signature (lS_o, lS_i):
    dense_x float32 (B, 13); offsets int64 (26, B) = start of each bag in that table's index
    list; indices_k int64 (N_k,) for k = 0..25. Both exporters emit one ``Loop`` per table.

Teacher: per-table embeddings (dim 8) and biases, a tanh projection of the dense features and
sparse pairwise dot interactions; logits standardised to a fixed spread, offset for a ~25 %
click rate; labels ~ Bernoulli(sigmoid(logit)). Categorical ids are Zipf-distributed (per-table
exponent 0.9-1.3, rank -> row id through a random permutation). ``teacher_auc`` in the card is
the Bayes-optimal AUC on the eval set.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import common

NUM_DENSE = 13
NUM_TABLES = 26
EMB_DIM = 16
# Criteo Kaggle (DAC) row counts per categorical feature; sizes cap them.
CRITEO_KAGGLE_ROWS = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
                      27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572)


@dataclass(frozen=True)
class DLRMSize:
    """Size preset: ``rows[k] = min(CRITEO_KAGGLE_ROWS[k], row_cap)``; MLP widths in features."""
    name: str
    row_cap: int
    bottom: tuple[int, ...]       # starts with 13, ends with EMB_DIM
    top: tuple[int, ...]          # hidden widths then 1 (input width is derived)
    n_train: int
    n_eval: int
    batch: int

    @property
    def rows(self) -> tuple[int, ...]:
        return tuple(min(r, self.row_cap) for r in CRITEO_KAGGLE_ROWS)


SIZES = {
    "default": DLRMSize("default", 160_000, (13, 512, 256, 64, 16), (512, 256, 1), 1_000_000, 4096, 1024),
    "small": DLRMSize("small", 2_000, (13, 64, 16), (64, 32, 1), 400_000, 2048, 512),
    "quick": DLRMSize("quick", 300, (13, 32, 16), (32, 1), 16_384, 256, 512),
}


def mlp(widths: tuple[int, ...], *, relu_last: bool) -> nn.Sequential:
    """Linear/ReLU stack: Linear layers sit at even indices (``bottom_mlp.0``, ``.2``, ...)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if relu_last or i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """Reference DLRM with one-hot lookups; forward(dense_x (B,13), sparse_ids (B,26)) -> ctr (B,1)."""

    def __init__(self, rows: tuple[int, ...], bottom: tuple[int, ...], top: tuple[int, ...]):
        super().__init__()
        assert bottom[-1] == EMB_DIM
        self.rows = tuple(rows)
        self.bottom_mlp = mlp(bottom, relu_last=True)
        self.emb = nn.ModuleList(self._table(n) for n in rows)
        n_vec = len(rows) + 1
        self.top_mlp = mlp((EMB_DIM + n_vec * (n_vec - 1) // 2, *top), relu_last=False)
        pairs = [i * n_vec + j for i in range(n_vec) for j in range(i)]   # reference li/lj order
        self.register_buffer("tri_index", torch.tensor(pairs, dtype=torch.int64), persistent=False)
        for table in self.emb:   # reference init: U(-sqrt(1/n), sqrt(1/n))
            bound = float(np.sqrt(1.0 / table.weight.shape[0]))
            nn.init.uniform_(table.weight, -bound, bound)

    def _table(self, n: int) -> nn.Module:
        return nn.Embedding(n, EMB_DIM, sparse=True)

    def interact(self, x: torch.Tensor, ly: list[torch.Tensor]) -> torch.Tensor:
        """x (B,16), ly 26 x (B,16) -> (B, 16 + 351): [x, strict lower triangle of T T^T]."""
        t = torch.cat([x, *ly], dim=1).reshape(-1, len(ly) + 1, EMB_DIM)
        z = torch.bmm(t, t.transpose(1, 2)).reshape(-1, (len(ly) + 1) ** 2)
        return torch.cat([x, torch.index_select(z, 1, self.tri_index)], dim=1)

    def embed(self, sparse_ids: torch.Tensor) -> list[torch.Tensor]:
        return [table(sparse_ids[:, k]) for k, table in enumerate(self.emb)]   # F.embedding -> Gather

    def logits(self, dense_x: torch.Tensor, *sparse) -> torch.Tensor:
        return self.top_mlp(self.interact(self.bottom_mlp(dense_x), self.embed(*sparse)))

    def forward(self, dense_x: torch.Tensor, sparse_ids: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(dense_x, sparse_ids))


class DLRMBag(DLRM):
    """forward(dense_x (B,13), offsets (26,B), *indices (N_k,)) -> ctr (B,1); EmbeddingBag sum."""

    def _table(self, n: int) -> nn.Module:
        return nn.EmbeddingBag(n, EMB_DIM, mode="sum", sparse=True)

    def embed(self, offsets: torch.Tensor, *indices: torch.Tensor) -> list[torch.Tensor]:
        return [table(indices[k], offsets[k]) for k, table in enumerate(self.emb)]

    def forward(self, dense_x: torch.Tensor, offsets: torch.Tensor, *indices: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(dense_x, offsets, *indices))


# --------------------------------------------------------------------------- teacher and data
class Teacher:
    """Hidden click model; ``sample(n, ...)`` draws features, bags and labels.

    The random weights depend only on (rows, seed); the logit offset is calibrated for the
    one-hot or the multi-hot input distribution (``multi_hot``)."""

    DIM = 8
    CTR = 0.25          # target click rate
    SPREAD = 1.8        # std of the standardised logit
    PAIR_SCALE = 0.25   # weight of the pairwise-interaction term against the per-id biases

    def __init__(self, rows: tuple[int, ...], seed: int, *, multi_hot: bool):
        g = common.rng(seed, 1000 + len(rows) + sum(rows) % 997)
        self.rows = rows
        self.dense_mu = g.uniform(0.0, 3.0, NUM_DENSE)
        self.proj = g.normal(0, 1 / np.sqrt(NUM_DENSE), (NUM_DENSE, self.DIM))
        self.dense_w = g.normal(0, 0.3, NUM_DENSE)
        self.zipf_s = g.uniform(0.9, 1.3, len(rows))
        self.bag_lambda = np.where(g.random(len(rows)) < 0.35, 0.0, g.uniform(0.3, 3.0, len(rows)))
        self.cdf, self.perm, self.emb, self.bias = [], [], [], []
        for k, n in enumerate(rows):
            p = np.arange(1, n + 1, dtype=np.float64) ** -self.zipf_s[k]
            self.cdf.append(np.cumsum(p) / p.sum())
            self.perm.append(g.permutation(n))
            self.emb.append(g.normal(0, 1 / np.sqrt(self.DIM), (n, self.DIM)).astype(np.float32))
            self.bias.append(g.normal(0, 0.4, n).astype(np.float32))
        n_vec = len(rows) + 1
        self.pair_w = np.tril(g.normal(0, 1, (n_vec, n_vec)) * (g.random((n_vec, n_vec)) < 0.25), -1)
        self.center, self.scale, self.offset = 0.0, 1.0, 0.0
        self.dense_c = np.log1p(np.exp(self.dense_mu + 0.5))   # rough centre of log1p(lognormal)
        raw = self._raw_logit(*self._features(common.rng(seed, 2000), 20_000, multi_hot)[:2])
        self.center, self.scale = float(raw.mean()), float(raw.std())
        z = (raw - self.center) / self.scale * self.SPREAD
        lo, hi = -10.0, 10.0
        for _ in range(60):   # bisection: mean sigmoid(z + offset) == CTR
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.mean(1 / (1 + np.exp(-(z + mid)))) < self.CTR else (lo, mid)
        self.offset = (lo + hi) / 2

    def _features(self, g: np.random.Generator, n: int, multi_hot: bool):
        dense = np.log1p(g.lognormal(self.dense_mu, 1.0, (n, NUM_DENSE))).astype(np.float32)
        bags = []   # per table: (flat ids (N_k,), offsets (n+1,))
        for k in range(len(self.rows)):
            lengths = 1 + (np.minimum(g.poisson(self.bag_lambda[k], n), 9) if multi_hot else np.zeros(n, int))
            ranks = np.searchsorted(self.cdf[k], g.random(int(lengths.sum())), side="right")
            ids = self.perm[k][np.minimum(ranks, self.rows[k] - 1)].astype(np.int64)
            bags.append((ids, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)))
        return dense, bags, g

    def _raw_logit(self, dense: np.ndarray, bags) -> np.ndarray:
        n = len(dense)
        xc = dense - self.dense_c
        vecs = [np.tanh(xc @ self.proj)]
        raw = xc @ self.dense_w
        for k, (ids, off) in enumerate(bags):
            seg = np.repeat(np.arange(n), np.diff(off))
            e = torch.zeros(n, self.DIM).index_add_(0, torch.from_numpy(seg), torch.from_numpy(self.emb[k][ids])).numpy()
            raw = raw + np.bincount(seg, weights=self.bias[k][ids], minlength=n)
            vecs.append(e)
        t = np.stack(vecs, axis=1)                                  # (n, 27, 8)
        gram = np.einsum("bid,bjd->bij", t, t)
        return raw + self.PAIR_SCALE * np.einsum("bij,ij->b", gram, self.pair_w)

    def probability(self, dense: np.ndarray, bags) -> np.ndarray:
        z = (self._raw_logit(dense, bags) - self.center) / self.scale * self.SPREAD + self.offset
        return 1.0 / (1.0 + np.exp(-z))

    def sample(self, n: int, *, multi_hot: bool, seed: int, stream: int, chunk: int = 50_000):
        """Returns dense (n,13) f32, bags [(ids, offsets(n+1))]*26, labels (n,) f32, teacher p (n,)."""
        g = common.rng(seed, stream)
        parts = []
        for start in range(0, n, chunk):
            dense, bags, _ = self._features(g, min(chunk, n - start), multi_hot)
            p = self.probability(dense, bags)
            parts.append((dense, bags, (g.random(len(p)) < p).astype(np.float32), p))
        dense = np.concatenate([p[0] for p in parts])
        bags = []
        for k in range(len(self.rows)):
            ids = np.concatenate([p[1][k][0] for p in parts])
            lens = np.concatenate([np.diff(p[1][k][1]) for p in parts])
            bags.append((ids, np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)))
        return dense, bags, np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts])


def batch_inputs(dense: np.ndarray, bags, lo: int, hi: int, *, multi_hot: bool) -> tuple[np.ndarray, ...]:
    """Rows [lo, hi) as model inputs: (dense, sparse_ids (B,26)) or (dense, offsets (26,B), *indices)."""
    if not multi_hot:
        return dense[lo:hi], np.stack([ids[lo:hi] for ids, _ in bags], axis=1)
    offsets = np.stack([off[lo:hi] - off[lo] for _, off in bags])
    return (dense[lo:hi], offsets, *[ids[off[lo]:off[hi]] for ids, off in bags])


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(np.asarray(labels).ravel(), np.asarray(scores, dtype=np.float64).ravel()))


def train(model: DLRM, teacher: Teacher, size: DLRMSize, *, multi_hot: bool, seed: int) -> dict:
    """One pass over ``size.n_train`` fresh teacher samples: Adam (MLPs) + SparseAdam (tables)."""
    dense, bags, labels, _ = teacher.sample(size.n_train, multi_hot=multi_hot, seed=seed, stream=1)
    dense_opt = torch.optim.Adam([p for n, p in model.named_parameters() if not n.startswith("emb.")], lr=1e-3)
    sparse_opt = torch.optim.SparseAdam(list(model.emb.parameters()), lr=1e-2)
    model.train()
    losses = []
    for lo in range(0, size.n_train, size.batch):
        hi = min(lo + size.batch, size.n_train)
        args = [torch.from_numpy(np.ascontiguousarray(a)) for a in batch_inputs(dense, bags, lo, hi, multi_hot=multi_hot)]
        loss = F.binary_cross_entropy_with_logits(model.logits(*args).squeeze(1), torch.from_numpy(labels[lo:hi]))
        dense_opt.zero_grad(set_to_none=True)
        sparse_opt.zero_grad(set_to_none=True)
        loss.backward()
        dense_opt.step()
        sparse_opt.step()
        losses.append(loss.item())
    model.eval()
    tail = max(1, len(losses) // 10)
    return {"samples": size.n_train, "batch": size.batch, "steps": len(losses),
            "optimizer": "Adam lr=1e-3 (MLPs) + SparseAdam lr=1e-2 (tables)",
            "train_ctr": float(labels.mean()), "final_logloss": float(np.mean(losses[-tail:]))}


def _build(out_dir: Path, *, name: str, size: DLRMSize, multi_hot: bool, quick: bool, seed: int) -> dict:
    t_start = time.perf_counter()
    common.seed_everything(seed, threads=1)
    teacher = Teacher(size.rows, seed, multi_hot=multi_hot)
    model = (DLRMBag if multi_hot else DLRM)(size.rows, size.bottom, size.top)
    training = train(model, teacher, size, multi_hot=multi_hot, seed=seed)

    dense, bags, labels, p_teacher = teacher.sample(size.n_eval, multi_hot=multi_hot, seed=seed, stream=2)
    eval_arrays = batch_inputs(dense, bags, 0, size.n_eval, multi_hot=multi_hot)
    with torch.no_grad():
        torch_out = model(*[torch.from_numpy(np.ascontiguousarray(a)) for a in eval_arrays]).numpy()
    example = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in batch_inputs(dense, bags, 0, 4, multi_hot=multi_hot))
    batch = torch.export.Dim("batch", min=1)
    if multi_hot:
        input_names = ["dense_x", "offsets", *[f"indices_{k}" for k in range(NUM_TABLES)]]
        axes = {"dense_x": {0: "batch"}, "offsets": {1: "batch"}, "ctr": {0: "batch"},
                **{f"indices_{k}": {0: f"n_indices_{k}"} for k in range(NUM_TABLES)}}
        shapes = ({0: batch}, {1: batch},
                  tuple({0: torch.export.Dim(f"n_indices_{k}", min=1)} for k in range(NUM_TABLES)))
    else:
        input_names = ["dense_x", "sparse_ids"]
        axes = {n: {0: "batch"} for n in (*input_names, "ctr")}
        shapes = ({0: batch}, {0: batch})
    bag_lengths = [float(np.diff(off).mean()) for _, off in bags]
    return common.finish_model(
        out_dir, name=name, model=model, example_args=example,
        eval_inputs={n: np.ascontiguousarray(a) for n, a in zip(input_names, eval_arrays)},
        eval_labels=labels, input_names=input_names, output_names=["ctr"], dynamic_axes=axes,
        dynamic_shapes=shapes, metric="auc", metric_fn=lambda out, y: auc(out, y),
        torch_outputs=torch_out, seed=seed, quick=quick, t_start=t_start,
        extra={"family": "dlrm", "task": "CTR prediction on synthetic teacher clicks",
               "size": size.name, "table_rows": list(size.rows), "total_rows": int(sum(size.rows)),
               "emb_dim": EMB_DIM, "bottom_mlp": list(size.bottom),
               "top_mlp": [model.top_mlp[0].in_features, *size.top],
               "lookup": "EmbeddingBag(mode=sum), ragged multi-hot bags" if multi_hot else "F.embedding one-hot (Gather)",
               "zipf_exponents": [round(float(s), 3) for s in teacher.zipf_s],
               "mean_bag_length": [round(b, 3) for b in bag_lengths],
               "teacher_auc": auc(p_teacher, labels), "eval_ctr": float(labels.mean()),
               "eval_logloss_torch": _logloss(torch_out.ravel(), labels),
               "training": training})


def _logloss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def build(out_dir: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """``dlrm``: one-hot (Gather) DLRM, ~1.24M table rows (quick: ~5k rows)."""
    return _build(out_dir, name="dlrm", size=SIZES["quick" if quick else "default"], multi_hot=False,
                  quick=quick, seed=seed)


def build_bag(out_dir: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """``dlrm_bag``: EmbeddingBag DLRM on ragged multi-hot bags (one Loop per table in ONNX)."""
    return _build(out_dir, name="dlrm_bag", size=SIZES["quick" if quick else "default"], multi_hot=True,
                  quick=quick, seed=seed)


def build_small(out_dir: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """``dlrm_small``: Gather-form DLRM with ~31k rows (the bundled one); quick shrinks training."""
    size = SIZES["small"]
    if quick:
        size = DLRMSize("small", size.row_cap, size.bottom, size.top, 20_000, 512, size.batch)
    return _build(out_dir, name="dlrm_small", size=size, multi_hot=False, quick=quick, seed=seed)
