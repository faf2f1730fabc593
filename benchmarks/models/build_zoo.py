"""Build the model zoo (torch -> ONNX) into a cache folder.

    python -m benchmarks.models.build_zoo [--out build/zoo] [--only dlrm,lenet5] [--quick] [--seed 0]
    python -m benchmarks.models.build_zoo --bundle     # lenet5 + dlrm_small into accelsim/bundled/

Each model lands in ``<out>/<name>/`` (model.onnx, model.dynamo.onnx, eval_inputs.npz,
eval_labels.npy, card.json); ``<out>/zoo.json`` summarises the cards of this run. A failing
builder is reported and the others still run; the exit code is 1 if any failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import bert, dlrm, lenet, resnet  # noqa: E402
from .common import DYNAMO_FILE  # noqa: E402

Builder = Callable[..., dict]

# cheap first, so a partial run still yields the small models
BUILDERS: dict[str, Builder] = {
    "lenet5": lenet.build,
    "dlrm_small": dlrm.build_small,
    "dlrm": dlrm.build,
    "dlrm_bag": dlrm.build_bag,
    "resnet18": resnet.build,
    "minilm_tweets": bert.build_minilm,
    "tinybert_tweets": bert.build_tinybert,
    "bert_base": bert.build_bert_base,
}
BUNDLED = ("lenet5", "dlrm_small")
BUNDLE_DIR = Path(__file__).resolve().parents[2] / "accelsim" / "bundled"


def headline(card: dict) -> dict:
    """The numbers worth a glance: metric on model.onnx, params, seconds, dynamo status."""
    out = {"params": card["params"], card["metric"]: round(card[card["metric"]], 4),
           "build_seconds": card["build_seconds"], "dynamo_ok": card["dynamo_export"]["ok"]}
    for key in ("teacher_auc", "majority_baseline_accuracy"):
        if key in card:
            out[key] = round(card[key], 4)
    return out


def build_all(out: Path, names: list[str], *, quick: bool, seed: int, log=print) -> tuple[dict, dict]:
    """Run the named builders into ``out/<name>``; returns (cards, errors)."""
    cards, errors = {}, {}
    for name in names:
        t0 = time.perf_counter()
        log(f"[zoo] {name}: building (quick={quick}, seed={seed}) ...")
        try:
            cards[name] = BUILDERS[name](out / name, quick=quick, seed=seed)
            log(f"[zoo] {name}: done in {time.perf_counter() - t0:.1f}s {json.dumps(headline(cards[name]))}")
        except Exception as exc:  # noqa: BLE001 - keep building the others
            errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"[zoo] {name}: FAILED after {time.perf_counter() - t0:.1f}s\n{traceback.format_exc()}")
    return cards, errors


def bundle(seed: int = 0, log=print) -> dict:
    """Full builds of the bundled models into accelsim/bundled/ (legacy ONNX only, < 5 MB)."""
    cards, errors = build_all(BUNDLE_DIR, list(BUNDLED), quick=False, seed=seed, log=log)
    if errors:
        raise SystemExit(f"bundle failed: {errors}")
    for name, card in cards.items():
        folder = BUNDLE_DIR / name
        (folder / DYNAMO_FILE).unlink(missing_ok=True)   # keep the package small
        if DYNAMO_FILE in card["graphs"]:
            card["graphs"][DYNAMO_FILE]["shipped"] = False
        card["bundled_files"] = sorted(p.name for p in folder.iterdir())
        (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    total = sum(p.stat().st_size for p in BUNDLE_DIR.rglob("*") if p.is_file())
    log(f"[zoo] bundle: {total / 1e6:.2f} MB in {BUNDLE_DIR}")
    return cards


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.models.build_zoo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("build/zoo"), help="cache folder (default build/zoo)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BUILDERS)}")
    ap.add_argument("--quick", action="store_true", help="tiny training and eval sets (seconds per model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bundle", action="store_true", help="(re)build accelsim/bundled/{lenet5,dlrm_small}")
    args = ap.parse_args(argv)
    log = lambda msg: print(time.strftime("%H:%M:%S"), msg, flush=True)
    if args.bundle:
        bundle(args.seed, log)
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BUILDERS)
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(BUILDERS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cards, errors = build_all(args.out, names, quick=args.quick, seed=args.seed, log=log)
    summary_path = args.out / "zoo.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.update({n: headline(c) for n, c in cards.items()})
    summary.update({n: {"error": e} for n, e in errors.items()})
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    log(f"[zoo] {len(cards)} built, {len(errors)} failed, {time.perf_counter() - t0:.0f}s total -> {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
