"""Shared helpers of the model zoo: seeding, ONNX export (legacy + dynamo), op histograms,
onnxruntime evaluation and ``card.json`` writing.

Every builder produces one folder per model::

    <out_dir>/model.onnx            legacy TorchScript exporter (dynamo=False), opset 20
    <out_dir>/model.dynamo.onnx     dynamo exporter, weights embedded (if the export worked)
    <out_dir>/eval_inputs.npz       evaluation inputs keyed by the graph input names
    <out_dir>/eval_labels.npy       labels of the evaluation set
    <out_dir>/eval_outputs_torch.npy  torch eager outputs on the eval inputs (reference)
    <out_dir>/card.json             see :func:`finish_model`

Both exports are given the same ``input_names``/``output_names``; :func:`finish_model`
checks that the dynamo graph really uses them (and writes ``eval_inputs.dynamo.npz`` if not).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")   # nothing may be downloaded at run time

LEGACY_FILE = "model.onnx"
DYNAMO_FILE = "model.dynamo.onnx"
MAX_TORCH_THREADS = 2          # the machine is shared: never more
_TWO_GB = 2 * 1024**3


# --------------------------------------------------------------------------- seeding
def seed_everything(seed: int, *, threads: int = 1) -> None:
    """Seed torch, fix the intra-op thread count (<= 2) and ask for deterministic kernels."""
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, min(threads, MAX_TORCH_THREADS)))
    torch.use_deterministic_algorithms(True, warn_only=True)


def rng(seed: int, stream: int) -> np.random.Generator:
    """numpy Generator defined by an explicit (seed, stream) pair: independent streams."""
    return np.random.default_rng([int(seed), int(stream)])


# --------------------------------------------------------------------------- parameters
def count_params(module: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def params_by_module(module: torch.nn.Module) -> dict[str, int]:
    """Parameter count per owning (leaf) module, e.g. ``{"bottom_mlp.0": 7168, "emb.3": ...}``."""
    counts: dict[str, int] = {}
    for name, p in module.named_parameters():
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        counts[owner] = counts.get(owner, 0) + int(p.numel())
    return counts


def distinct_constant_tensors(model: torch.nn.Module, seed: int, *, rel: float = 0.02) -> list[str]:
    """Perturb every float parameter/buffer whose elements are all equal; returns their names.

    Fresh LayerNorm/BatchNorm (gamma 1, beta 0), zero biases and BN running stats are identical
    tensors; both exporters merge identical initializers into one (the legacy one adds
    ``Identity`` nodes named after the other parameters), so distinct parameters would share one
    tensor in the ONNX file. Adds seeded N(0, rel * max(1, |c|)) noise to each such tensor.
    Trained tensors are never constant, so this is a no-op for trained models.
    """
    gen = torch.Generator().manual_seed(int(seed) + 7919)
    changed = []
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if t.is_floating_point() and t.numel() > 1 and bool((t == t.reshape(-1)[0]).all()):
                scale = rel * max(1.0, abs(float(t.reshape(-1)[0])))
                t.add_(torch.randn(t.shape, generator=gen) * scale)
                changed.append(name)
    return changed


# --------------------------------------------------------------------------- export
@contextlib.contextmanager
def _quiet():
    """Silence exporter chatter (deprecation warnings, dynamo progress prints)."""
    buf = io.StringIO()
    prev = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            yield buf
    finally:
        logging.disable(prev)


def export_legacy(model: torch.nn.Module, args: tuple, path: Path, *, input_names: Sequence[str],
                  output_names: Sequence[str], dynamic_axes: dict) -> None:
    """TorchScript-based export (BN folded in eval mode), then ``onnx.checker`` on the path."""
    model.eval()
    with _quiet(), torch.no_grad():
        torch.onnx.export(model, args, str(path), dynamo=False, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes)
    onnx.checker.check_model(str(path))


def export_dynamo(model: torch.nn.Module, args: tuple, path: Path, *, input_names: Sequence[str],
                  output_names: Sequence[str], dynamic_shapes, keep_batchnorm: bool = False) -> str | None:
    """torch.export-based export. Returns None on success, else a one-paragraph error text.

    Weights are embedded (``external_data=False``) unless the parameters exceed ~2 GB. The
    exporter's default optimisation (onnxscript constant folding + rewrite rules) is applied;
    with ``keep_batchnorm`` the rule that fuses BatchNormalization into Conv is left out, so
    the graph keeps its ``BatchNormalization`` nodes (onnxscript 0.7 fuses them by default).
    """
    model.eval()
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(model, args, None, dynamo=True, optimize=False,
                                        input_names=list(input_names), output_names=list(output_names),
                                        dynamic_shapes=dynamic_shapes)
            if keep_batchnorm:
                import onnxscript.optimizer as oso
                import onnxscript.rewriter as osr
                from onnxscript.rewriter.rules.common import _fuse_batchnorm

                fuse_bn = {id(r) for r in _fuse_batchnorm.rules.rules}
                oso.fold_constants(program.model)
                program.model = osr.rewrite(program.model, pattern_rewrite_rules=[
                    r for r in osr._DEFAULT_REWRITE_RULES if id(r) not in fuse_bn])
                oso.fold_constants(program.model)
            else:
                program.optimize()
            program.save(str(path), external_data=nbytes > 0.9 * _TWO_GB)
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - recorded in the card, not fatal
        for p in (path, Path(str(path) + ".data")):
            if p.exists():
                p.unlink()
        text = f"{type(exc).__name__}: {exc}"
        summary = [ln for ln in text.splitlines() if ln.strip()]
        return " | ".join(summary[:12])[:2000]
    return None


def batch_dynamic(input_names: Sequence[str], output_names: Sequence[str]) -> tuple[dict, tuple]:
    """Axis 0 of every input and output is the batch: (legacy dynamic_axes, dynamo dynamic_shapes)."""
    axes = {n: {0: "batch"} for n in (*input_names, *output_names)}
    batch = torch.export.Dim("batch", min=1)
    return axes, tuple({0: batch} for _ in input_names)


# --------------------------------------------------------------------------- graphs
def op_histogram(model: onnx.ModelProto) -> dict:
    """Op counts of the main graph and of every nested subgraph kind.

    Returns ``{"ops": {op: n}, "subgraphs": {"Loop.body": {"instances": k, "ops": {...}},
    "Loop.body/If.then_branch": {...}}}``; ops of subgraphs are summed over all instances of
    the same path and are *not* included in the top-level ``ops``.
    """
    subgraphs: dict[str, dict] = {}

    def visit(graph: onnx.GraphProto, prefix: str) -> Counter:
        counts: Counter = Counter()
        for node in graph.node:
            counts[node.op_type] += 1
            for attr in node.attribute:
                graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
                for sub in graphs:
                    key = f"{prefix}/{node.op_type}.{attr.name}" if prefix else f"{node.op_type}.{attr.name}"
                    entry = subgraphs.setdefault(key, {"instances": 0, "ops": Counter()})
                    entry["instances"] += 1
                    entry["ops"].update(visit(sub, key))
        return counts

    top = visit(model.graph, "")
    return {"ops": dict(sorted(top.items())),
            "subgraphs": {k: {"instances": v["instances"], "ops": dict(sorted(v["ops"].items()))}
                          for k, v in sorted(subgraphs.items())}}


def _value_info(vi: onnx.ValueInfoProto) -> dict:
    t = vi.type.tensor_type
    shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
    return {"name": vi.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": shape}


def describe_graph(path: Path) -> dict:
    """Inputs/outputs, opset, file size and op histogram of an exported file."""
    model = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in model.graph.initializer}
    return {
        "opset": int(next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))),
        "bytes": path.stat().st_size,
        "inputs": [_value_info(v) for v in model.graph.input if v.name not in init],
        "outputs": [_value_info(v) for v in model.graph.output],
        **op_histogram(model),
    }


# --------------------------------------------------------------------------- running
def run_onnx(path: Path, feeds: dict[str, np.ndarray], *, batch: int | None = None,
             threads: int = MAX_TORCH_THREADS) -> np.ndarray:
    """First output of the graph under onnxruntime (CPU), optionally in batches along axis 0.

    Batching along axis 0 is only valid for inputs whose axis 0 is the batch axis.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    n = len(next(iter(feeds.values())))
    if batch is None or batch >= n:
        return sess.run(None, feeds)[0]
    outs = [sess.run(None, {k: v[i:i + batch] for k, v in feeds.items()})[0] for i in range(0, n, batch)]
    return np.concatenate(outs, axis=0)


def max_rel_diff(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / max |ref| (the agreement measure used in cards and tests)."""
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-30))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "onnx", "onnxruntime", "onnxscript", "numpy", "transformers", "scikit-learn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------- the card
def finish_model(out_dir: Path, *, name: str, model: torch.nn.Module, example_args: tuple,
                 eval_inputs: dict[str, np.ndarray], eval_labels: np.ndarray,
                 input_names: Sequence[str], output_names: Sequence[str], dynamic_axes: dict,
                 dynamic_shapes, metric: str, metric_fn: Callable[[np.ndarray, np.ndarray], float],
                 torch_outputs: np.ndarray, seed: int, quick: bool, t_start: float,
                 extra: dict | None = None, ort_batch: int | None = None,
                 try_dynamo: bool = True, keep_batchnorm: bool = False) -> dict:
    """Export twice, evaluate both files with onnxruntime, save eval data and ``card.json``.

    ``torch_outputs``: eager outputs of ``model`` on ``eval_inputs`` (the reference the ONNX
    files are compared with). ``metric_fn(outputs, labels)`` gives the headline metric
    (``"accuracy"`` or ``"auc"``); the card's top-level metric is measured on ``model.onnx``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (LEGACY_FILE, DYNAMO_FILE, DYNAMO_FILE + ".data", "eval_inputs.dynamo.npz"):
        if (out_dir / stale).exists():
            (out_dir / stale).unlink()
    np.savez_compressed(out_dir / "eval_inputs.npz", **eval_inputs)
    np.save(out_dir / "eval_labels.npy", eval_labels)
    np.save(out_dir / "eval_outputs_torch.npy", np.asarray(torch_outputs, dtype=np.float32))

    graphs: dict[str, dict] = {}
    t0 = time.perf_counter()
    export_legacy(model, example_args, out_dir / LEGACY_FILE, input_names=input_names,
                  output_names=output_names, dynamic_axes=dynamic_axes)
    export_seconds = {LEGACY_FILE: time.perf_counter() - t0}
    dynamo_error = "not attempted" if not try_dynamo else None
    if try_dynamo:
        t0 = time.perf_counter()
        dynamo_error = export_dynamo(model, example_args, out_dir / DYNAMO_FILE, input_names=input_names,
                                     output_names=output_names, dynamic_shapes=dynamic_shapes,
                                     keep_batchnorm=keep_batchnorm)
        export_seconds[DYNAMO_FILE] = time.perf_counter() - t0

    metrics = {}
    for fname, exporter in ((LEGACY_FILE, "legacy"), (DYNAMO_FILE, "dynamo")):
        path = out_dir / fname
        if not path.exists():
            continue
        info = describe_graph(path)
        feeds = eval_inputs
        graph_names = [i["name"] for i in info["inputs"]]
        if sorted(graph_names) != sorted(eval_inputs):
            # dynamo renamed the inputs: keep a second npz in the graph's own names (same order)
            feeds = dict(zip(graph_names, eval_inputs.values()))
            np.savez_compressed(out_dir / "eval_inputs.dynamo.npz", **feeds)
            info["eval_inputs_file"] = "eval_inputs.dynamo.npz"
        else:
            info["eval_inputs_file"] = "eval_inputs.npz"
        outputs = run_onnx(path, feeds, batch=ort_batch)
        info["exporter"] = exporter
        info["export_seconds"] = round(export_seconds[fname], 2)
        info["max_rel_diff_vs_torch"] = max_rel_diff(outputs, torch_outputs)
        info[metric] = float(metric_fn(outputs, eval_labels))
        metrics[fname] = info[metric]
        graphs[fname] = info

    card = {
        "name": name,
        "quick": bool(quick),
        "seed": int(seed),
        "params": count_params(model),
        "params_by_module": params_by_module(model),
        "metric": metric,
        metric: metrics[LEGACY_FILE],
        f"{metric}_torch": float(metric_fn(torch_outputs, eval_labels)),
        "eval_size": int(len(eval_labels)),
        "input_names": list(input_names),
        "output_names": list(output_names),
        "graphs": graphs,
        "dynamo_export": {"ok": dynamo_error is None, "error": dynamo_error},
        "versions": versions(),
    }
    card.update(extra or {})
    card["build_seconds"] = round(time.perf_counter() - t_start, 2)
    write_card(out_dir, card)
    return card


def write_card(out_dir: Path, card: dict) -> None:
    (Path(out_dir) / "card.json").write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")


def torch_eval(fn: Callable[..., torch.Tensor], arrays: Sequence[np.ndarray], *, batch: int = 512) -> np.ndarray:
    """Eager outputs of ``fn`` over row-batches of numpy inputs (axis 0 = batch), as numpy."""
    n = len(arrays[0])
    outs = []
    with torch.no_grad():
        for i in range(0, n, batch):
            outs.append(fn(*[torch.from_numpy(np.ascontiguousarray(a[i:i + batch])) for a in arrays]).numpy())
    return np.concatenate(outs, axis=0)

