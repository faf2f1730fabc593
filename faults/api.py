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

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from accelsim import bundled, executor
from accelsim.config import HardwareConfig, load_config
from accelsim.errors import UserError
from accelsim.ir import Program
from accelsim.schedule import Schedule, simulate

from faults.common.files import write_npz_atomic
from faults.common.fingerprint import file_digest
from faults.pvf.campaign import run_campaign
from faults.pvf.plan import BACKENDS, CampaignConfig
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
    """

    program: Program
    path: Path
    name: str
    model_id: str


def bundled_models() -> tuple[str, ...]:
    """Names of the models shipped inside the package."""
    return tuple(bundled.NAMES)


def load_model(source: str | Path, *, component_rewrites: Iterable[tuple[str, str]] = ()) -> Model:
    """Load a bundled model by name, or an ONNX file by path, and lower it.

    ``component_rewrites``: (regex, replacement) pairs applied to module paths before the
    default component labels (user mapping of components).
    """
    from frontend import load_onnx

    text = str(source)
    if text in bundled.NAMES and not Path(text).exists():
        path = bundled.path(text) / "model.onnx"
    else:
        path = Path(text)
    program = load_onnx(path, component_rewrites=component_rewrites)
    name = path.parent.name if path.stem == "model" and path.parent.name else path.stem
    return Model(program, path, name, f"{path.name}:{file_digest(path)}")


def load_inputs(source: Model | str | Path, *, batch: int | None = None) -> dict[str, np.ndarray]:
    """Graph inputs keyed by name: ``eval_inputs.npz`` beside a :class:`Model`, or an ``.npz`` path.

    ``batch``: keep only the first ``batch`` samples of every input.
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
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    if batch is not None:
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        arrays = {k: v[:batch] for k, v in arrays.items()}
    return arrays


def golden_run(model: Model, inputs: Mapping[str, np.ndarray], dtype: str = "fp32") -> dict[str, np.ndarray]:
    """Fault-free outputs by graph output name, parameters stored as ``dtype`` (fp32 compute)."""
    return executor.run(model.program, inputs, dtype=dtype).outputs


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
    cache = executor.run(model.program, inputs, keep_intermediates=True).cache or {}
    shapes = {name: tuple(np.shape(value)) for name, value in cache.items()}
    return simulate(model.program, shapes, config, index_values=cache)


def pvf_campaign(model: Model, inputs: Mapping[str, np.ndarray], config: CampaignConfig,
                 out_dir: str | Path, *, workers: int | None = None, backend: str = "local",
                 progress: bool = False) -> CampaignResults:
    """Run (or resume) a PVF campaign into ``out_dir``; its results (``last_run``: what this
    call ran: new trials, seconds, totals)."""
    summary = run_campaign(model.program, inputs, config, str(out_dir), workers=workers, backend=backend,
                           progress=progress, model_id=model.model_id, model_name=model.name)
    results = CampaignResults(out_dir)
    results.last_run = summary
    return results


def pvf_results(out_dir: str | Path, criterion: str | None = None) -> CampaignResults:
    """The results of the campaign in ``out_dir`` (``criterion`` re-applied if given)."""
    return CampaignResults(out_dir, criterion)


def avf_study(model: Model, inputs: Mapping[str, np.ndarray], hw: str | HardwareConfig, config: StudyConfig,
              out_dir: str | Path, *, overrides: Sequence[str] = (), dtype: str | None = None,
              criterion: str | None = None, output: str | None = None, workers: int = 1,
              progress: bool = False) -> StudyResult:
    """Run (or resume) an AVF study of one inference of ``inputs`` on ``hw``; its result.

    ``dtype`` defaults to the config's ``precision.weight_bytes``; ``workers`` runs the PVF
    campaign of the joined estimate.
    """
    ctx = AvfContext(model.program, inputs, hardware(hw, overrides), dtype, criterion, output)
    pvf = study_pvf(ctx, config, out_dir, workers=workers, progress=progress)
    return run_study(ctx, config, out_dir, pvf=pvf, settings={"model_name": model.name}, progress=progress)


def avf_sweep(model: Model, inputs: Mapping[str, np.ndarray], hw: str, sweep: SweepConfig, config: StudyConfig,
              out_dir: str | Path, *, overrides: Sequence[str] = (), dtype: str | None = None,
              criterion: str | None = None, output: str | None = None, progress: bool = False):
    """The study of :func:`avf_study` for each value of one config key; a pandas DataFrame of
    ``sweep.csv`` (one row per value × structure, and a total per value)."""
    import pandas as pd

    rows = run_sweep(model.program, inputs, hw, overrides, sweep, config, out_dir, dtype=dtype,
                     criterion=criterion, output=output, settings={"model_name": model.name}, progress=progress)
    return pd.DataFrame(rows)


def avf_results(out_dir: str | Path) -> StudyResult:
    """The result of the AVF study in ``out_dir``."""
    return StudyResult.load(out_dir)


def avf_sites(out_dir: str | Path):
    """pandas DataFrame: every direct site trial of the study in ``out_dir``."""
    import pandas as pd

    with AvfStore(out_dir, readonly=True) as store:
        return pd.DataFrame(store.rows())


def report(out_dir: str | Path, *, criterion: str | None = None, confidence: float | None = None,
           method: str | None = None, report_dir: str | Path | None = None, plots: bool = True) -> dict:
    """Write the report of a PVF campaign, AVF study or sweep folder; what was written, by kind
    (``pvf``, ``avf``, ``sweep``)."""
    folder = Path(out_dir)
    written: dict[str, dict] = {}
    if (folder / "trials.sqlite").is_file():
        written["pvf"] = write_report(folder, criterion=criterion, confidence=confidence, method=method,
                                      report_dir=report_dir, plots=plots)
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
    write_npz_atomic(path, outputs)


def onnx_op_histogram(model: Model) -> dict[str, int]:
    """ONNX op type -> node count of the model file (top-level graph; Loop bodies under Loop)."""
    import onnx

    proto = onnx.load(str(model.path), load_external_data=False)
    return dict(sorted(Counter(node.op_type for node in proto.graph.node).items()))
