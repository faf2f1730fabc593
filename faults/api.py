"""accelsim's Python API: the handful of calls a researcher makes from a notebook.

::

    from faults import api

    model = api.load_model("lenet5")                  # a bundled name or a path to an .onnx file
    inputs = api.load_inputs(model, batch=16)         # eval_inputs.npz beside the model, or a path
    logits = api.golden_run(model, inputs)["logits"]
    sched = api.schedule(model, inputs, "edge_npu", ["array.dataflow=os"])
    pvf = api.pvf_campaign(model, inputs, api.CampaignConfig(by=("layer",), trials=200), "runs/pvf")
    pvf.table("layer")                                # pandas DataFrame with intervals
    avf = api.avf_study(model, inputs, "edge_npu", api.StudyConfig(trials=300), "runs/avf")
    avf.table(), avf.fit_table()                      # pandas DataFrames

Every call that runs trials writes them to a results folder as they finish and resumes from it
(same definition, same model, same inputs); the same call gives the same numbers on any number
of workers. Configurations are frozen dataclasses validated on construction. Every error caused
by the input derives from :class:`accelsim.errors.UserError` and says what and where in one line.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from accelsim import bundled, executor
from accelsim.config import HardwareConfig, load_config
from accelsim.errors import InputWarning, UserError
from accelsim.ir import Program
from accelsim.schedule import Schedule, simulate

from faults.common.files import check_output_dir, check_output_file, write_npz_atomic
from faults.common.fingerprint import file_digest
from faults.pvf.campaign import run_campaign
from faults.pvf.plan import BACKENDS, CampaignConfig, CampaignError
from faults.pvf.results import CampaignResults
from faults.avf.context import AvfContext
from faults.avf.fit import parse_fit
from faults.avf.sites import SITE_STRUCTURES
from faults.avf.store import AvfStore
from faults.avf.study import JoinConfig, StudyConfig, StudyResult, run_study, study_pvf
from faults.avf.sweep import SweepConfig, run_sweep
from faults.report.avf_report import write_avf_report, write_sweep_report
from faults.report.pvf_report import write_report

__all__ = [
    "Model", "InputError", "CampaignConfig", "StudyConfig", "JoinConfig", "SweepConfig", "CampaignResults",
    "StudyResult", "bundled_models", "load_model", "load_inputs", "golden_run", "hardware", "schedule",
    "pvf_campaign", "pvf_results", "avf_study", "avf_sweep", "avf_results", "avf_sites", "report",
    "onnx_op_histogram", "save_outputs", "parse_fit", "BACKENDS", "SITE_STRUCTURES",
    "check_inputs", "check_output_dir", "check_output_file", "write_schedule", "InputWarning",
]


class InputError(UserError, ValueError):
    """A model or inputs file that cannot be used (one line)."""


@dataclass(frozen=True)
class Model:
    """A loaded model: its IR program and where it came from.

    Attributes:
        program: the lowered IR (parameters are read-only golden arrays).
        path: the ONNX file.
        name: display name (``lenet5``; ``<folder>`` for ``<folder>/model.onnx``).
        model_id: ``<file name>:<sha256 prefix>``, recorded by the stores.
        shapes: the ONNX graph without its weights, to check the shapes of inputs before a
            run (:func:`check_inputs`); None for a Model built by hand.
    """

    program: Program
    path: Path
    name: str
    model_id: str
    shapes: Any = None


def bundled_models() -> tuple[str, ...]:
    """Names of the models shipped inside the package."""
    return tuple(bundled.NAMES)


def load_model(source: str | Path, *, component_rewrites: Iterable[tuple[str, str]] = ()) -> Model:
    """Load a bundled model by name, or an ONNX file by path, and lower it.

    ``component_rewrites``: (regex, replacement) pairs applied to module paths before the
    default component labels (user mapping of components).
    """
    from frontend import lower_model, read_model
    from frontend.validate import shape_model

    text = str(source)
    if text in bundled.NAMES and not Path(text).exists():
        path = bundled.path(text) / "model.onnx"
    else:
        path = Path(text)
    proto = read_model(path)
    program = lower_model(proto, name=path.stem, component_rewrites=component_rewrites)
    name = path.parent.name if path.stem == "model" and path.parent.name else path.stem
    return Model(program, path, name, f"{path.name}:{file_digest(path)}", shape_model(proto))


def check_inputs(model: Model, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``inputs`` as the graph takes them, or one line saying why they do not fit the model:
    names, ranks, dims, element kinds, an empty batch (:func:`accelsim.executor.check_inputs`),
    then the model's ONNX shape inference with these input shapes (a node whose operands do
    not fit them is named before anything runs). NaN/Inf values give an ``InputWarning``."""
    arrays = executor.check_inputs(model.program, inputs)
    if model.shapes is not None:
        from frontend.validate import check_input_shapes

        check_input_shapes(model.shapes, {name: tuple(a.shape) for name, a in arrays.items()})
    return arrays


def _batch_size(inputs: Mapping[str, np.ndarray]) -> int:
    return min((len(a) for a in inputs.values() if np.ndim(a)), default=1)


def load_inputs(source: Model | str | Path, *, batch: int | None = None,
                max_inputs: int | None = None) -> dict[str, np.ndarray]:
    """Graph inputs keyed by name: ``eval_inputs.npz`` beside a :class:`Model`, or an ``.npz`` path.

    ``batch``: the first ``batch`` samples of every input (an error if there are fewer);
    ``max_inputs``: at most the first ``max_inputs`` samples.
    """
    if isinstance(source, Model):
        path = source.path.resolve().parent / "eval_inputs.npz"
        if not path.is_file():
            raise InputError(f"{source.path}: no eval_inputs.npz beside the model; give an inputs file (--inputs)")
    else:
        path = Path(source)
    if not path.is_file():
        raise InputError(f"{path}: no such inputs file")
    try:
        data = np.load(path, allow_pickle=False)
        single = not isinstance(data, np.lib.npyio.NpzFile)  # an .npy file: one array
        if not single:
            with data:
                arrays = {key: data[key] for key in data.files}
    except _UNREADABLE_NPZ as exc:
        raise InputError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    if single:
        raise InputError(f"{path}: a single array, not an .npz file of arrays keyed by graph input name")
    for option, count in (("batch", batch), ("max_inputs", max_inputs)):
        if count is None:
            continue
        if count < 1:
            raise InputError(f"{option} must be >= 1, got {count}")
        scalars = [k for k, v in arrays.items() if v.ndim == 0]
        if scalars:
            raise InputError(f"{path}: array {scalars[0]!r} is a scalar; it has no samples to take {option} of")
        held = min((len(v) for v in arrays.values()), default=0)
        if option == "batch" and count > held:
            raise InputError(f"batch {count}: {path} holds only {held} samples")
        arrays = {k: v[:count] for k, v in arrays.items()}
    return arrays


# What reading an .npz raises on a bad file: OSError, ValueError (pickled data refused, bad
# header), EOFError, BadZipFile (not a zip archive), zlib.error (a damaged compressed member).
_UNREADABLE_NPZ = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def golden_run(model: Model, inputs: Mapping[str, np.ndarray], dtype: str = "fp32") -> dict[str, np.ndarray]:
    """Fault-free outputs by graph output name, parameters stored as ``dtype`` (fp32 compute)."""
    return executor.run(model.program, check_inputs(model, inputs), dtype=dtype).outputs


def hardware(hw: str | HardwareConfig = "edge_npu", overrides: Sequence[str] = ()) -> HardwareConfig:
    """A preset by name or a TOML file, with ``key=value`` overrides (validated)."""
    if isinstance(hw, HardwareConfig):
        return load_config(hw.name, overrides) if overrides else hw
    return load_config(hw, list(overrides))


def schedule(model: Model, inputs: Mapping[str, np.ndarray], hw: str | HardwareConfig = "edge_npu",
             overrides: Sequence[str] = ()) -> Schedule:
    """The cycle-approximate schedule (per-op cycles, traffic, residency table) of one inference
    of the batch in ``inputs``."""
    config = hardware(hw, overrides)
    cache = executor.run(model.program, check_inputs(model, inputs), keep_intermediates=True).cache or {}
    shapes = {name: tuple(np.shape(value)) for name, value in cache.items()}
    return simulate(model.program, shapes, config, index_values=cache)


def pvf_campaign(model: Model, inputs: Mapping[str, np.ndarray], config: CampaignConfig,
                 out_dir: str | Path, *, workers: int | None = None, backend: str = "local",
                 progress: bool = False, golden_budget_gib: float | None = None) -> CampaignResults:
    """Run (or resume) a PVF campaign into ``out_dir``; its results (``last_run``: what this
    call ran: new trials, seconds, totals). ``golden_budget_gib``: golden activations each
    worker keeps (default 1.5; ``float('inf')`` = all); the rest is recomputed bit for bit, so
    it changes the speed and memory, never a result."""
    if golden_budget_gib is not None:
        if not golden_budget_gib >= 0:
            raise CampaignError(f"golden budget must be >= 0 GiB, got {golden_budget_gib}")
        os.environ["ACCELSIM_GOLDEN_BUDGET_GIB"] = repr(float(golden_budget_gib))  # read by the workers
    _check_study(model, inputs, config.inputs_per_trial, out_dir)
    summary = run_campaign(model.program, inputs, config, str(out_dir), workers=workers, backend=backend,
                           progress=progress, model_id=model.model_id, model_name=model.name)
    results = CampaignResults(out_dir)
    results.last_run = summary
    return results


def pvf_results(out_dir: str | Path, criterion: str | None = None, nonfinite: str | None = None) -> CampaignResults:
    """The results of the campaign in ``out_dir`` (``criterion`` / ``nonfinite`` policy re-applied if given)."""
    return CampaignResults(out_dir, criterion, nonfinite)


def avf_study(model: Model, inputs: Mapping[str, np.ndarray], hw: str | HardwareConfig, config: StudyConfig,
              out_dir: str | Path, *, overrides: Sequence[str] = (), dtype: str | None = None,
              criterion: str | None = None, output: str | None = None, nonfinite: str = "sdc",
              workers: int = 1, progress: bool = False) -> StudyResult:
    """Run (or resume) an AVF study of one inference of ``inputs`` on ``hw``; its result.

    ``dtype`` defaults to the config's ``precision.weight_bytes``; ``workers`` runs the PVF
    campaign of the joined estimate.
    """
    _check_study(model, inputs, config.inputs_per_trial, out_dir)
    ctx = AvfContext(model.program, inputs, hardware(hw, overrides), dtype, criterion, output, nonfinite=nonfinite)
    pvf = study_pvf(ctx, config, out_dir, workers=workers, progress=progress)
    return run_study(ctx, config, out_dir, pvf=pvf, settings={"model_name": model.name}, progress=progress)


def avf_sweep(model: Model, inputs: Mapping[str, np.ndarray], hw: str, sweep: SweepConfig, config: StudyConfig,
              out_dir: str | Path, *, overrides: Sequence[str] = (), dtype: str | None = None,
              criterion: str | None = None, output: str | None = None, nonfinite: str = "sdc",
              progress: bool = False):
    """The study of :func:`avf_study` for each value of one config key; a pandas DataFrame of
    ``sweep.csv`` (one row per value × structure, and a total per value)."""
    import pandas as pd

    _check_study(model, inputs, config.inputs_per_trial, out_dir)
    rows = run_sweep(model.program, inputs, hw, overrides, sweep, config, out_dir, dtype=dtype,
                     criterion=criterion, output=output, nonfinite=nonfinite, settings={"model_name": model.name},
                     progress=progress)
    return pd.DataFrame(rows)


def _check_study(model: Model, inputs: Mapping[str, np.ndarray], inputs_per_trial: int, out_dir) -> None:
    """Before a campaign or study runs: inputs that fit the model, no more inputs per trial
    than there are samples, a results folder that can be written."""
    check_inputs(model, inputs)
    samples = _batch_size(inputs)
    if inputs_per_trial > samples:
        raise InputError(f"{inputs_per_trial} inputs per trial, but the inputs hold only {samples} samples")
    check_output_dir(out_dir, "results folder")


def write_schedule(sched: Schedule, out_dir: str | Path) -> dict[str, Path]:
    """Write the schedule's CSV/JSON/PNG report to ``out_dir``; what was written, by kind."""
    from accelsim.schedule import write_report as write_schedule_report

    check_output_dir(out_dir, "output folder")
    return write_schedule_report(sched, Path(out_dir))


def avf_results(out_dir: str | Path) -> StudyResult:
    """The result of the AVF study in ``out_dir``."""
    return StudyResult.load(out_dir)


def avf_sites(out_dir: str | Path):
    """pandas DataFrame: every direct site trial of the study in ``out_dir``."""
    import pandas as pd

    with AvfStore(out_dir, readonly=True) as store:
        return pd.DataFrame(store.rows())


def report(out_dir: str | Path, *, criterion: str | None = None, confidence: float | None = None,
           method: str | None = None, report_dir: str | Path | None = None, plots: bool = True,
           nonfinite: str | None = None) -> dict:
    """Write the report of a PVF campaign, AVF study or sweep folder; what was written, by kind
    (``pvf``, ``avf``, ``sweep``). ``criterion`` / ``nonfinite`` (sdc, due, apart) re-apply
    another criterion / policy for NaN/Inf outputs to a PVF campaign."""
    folder = Path(out_dir)
    written: dict[str, dict] = {}
    if (folder / "trials.sqlite").is_file() or (folder / "avf_summary.json").is_file():
        check_output_dir(report_dir if report_dir is not None else folder / "report", "report folder")
    if (folder / "sweep.csv").is_file():
        check_output_dir(folder, "sweep folder")
    if (folder / "trials.sqlite").is_file():
        written["pvf"] = write_report(folder, criterion=criterion, confidence=confidence, method=method,
                                      report_dir=report_dir, plots=plots, nonfinite=nonfinite)
    if (folder / "avf_summary.json").is_file():
        written["avf"] = write_avf_report(folder, report_dir=report_dir, plots=plots)
    if (folder / "sweep.csv").is_file():
        written["sweep"] = write_sweep_report(folder, plots=plots)
    if not written:
        raise InputError(f"{out_dir}: neither a PVF campaign (trials.sqlite), an AVF study (avf_summary.json) "
                         "nor a sweep (sweep.csv)")
    return written


def save_outputs(path: str | Path, outputs: Mapping[str, np.ndarray]) -> None:
    """Write graph outputs (name -> array) to an ``.npz`` file atomically."""
    check_output_file(path, "output file", suffix=".npz")
    write_npz_atomic(path, outputs)


def onnx_op_histogram(model: Model) -> dict[str, int]:
    """ONNX op type -> node count of the model file (top-level graph; Loop bodies under Loop)."""
    import onnx

    proto = onnx.load(str(model.path), load_external_data=False)
    return dict(sorted(Counter(node.op_type for node in proto.graph.node).items()))
