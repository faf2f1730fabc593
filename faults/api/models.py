"""Models, inputs, hardware and the schedule: what every study starts from (part of
:mod:`faults.api`)."""
from __future__ import annotations

import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from accelsim import bundled, executor
from accelsim.config import HardwareConfig, load_config
from accelsim.errors import UserError
from accelsim.ir import Program
from accelsim.schedule import Schedule, simulate

from faults.common.files import check_output_dir, check_output_file, write_npz_atomic
from faults.common.fingerprint import file_digest


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


def write_schedule(sched: Schedule, out_dir: str | Path) -> dict[str, Path]:
    """Write the schedule's CSV/JSON/PNG report to ``out_dir``; what was written, by kind."""
    from accelsim.schedule import write_report as write_schedule_report

    check_output_dir(out_dir, "output folder")
    return write_schedule_report(sched, Path(out_dir))


def save_outputs(path: str | Path, outputs: Mapping[str, np.ndarray]) -> None:
    """Write graph outputs (name -> array) to an ``.npz`` file atomically."""
    check_output_file(path, "output file", suffix=".npz")
    write_npz_atomic(path, outputs)


def onnx_op_histogram(model: Model) -> dict[str, int]:
    """ONNX op type -> node count of the model file (top-level graph; Loop bodies under Loop)."""
    import onnx

    proto = onnx.load(str(model.path), load_external_data=False)
    return dict(sorted(Counter(node.op_type for node in proto.graph.node).items()))


def _check_study(model: Model, inputs: Mapping[str, np.ndarray], inputs_per_trial: int, out_dir) -> None:
    """Before a campaign or study runs: inputs that fit the model, no more inputs per trial
    than there are samples, a results folder that can be written."""
    check_inputs(model, inputs)
    samples = _batch_size(inputs)
    if inputs_per_trial > samples:
        raise InputError(f"{inputs_per_trial} inputs per trial, but the inputs hold only {samples} samples")
    check_output_dir(out_dir, "results folder")
