"""Seeded protobuf-mutation fuzzing of the bundled models through the loader and the executor.

600 mutants (``tests/hostile/mutate.py``: attribute values and types, node inputs, outputs and
op types, tensor dims, types and values, graph inputs and outputs, opset, byte flips,
truncation), each loaded with ``api.load_model`` and run with ``api.golden_run`` on four
evaluation samples under a time limit (and an address-space limit, so a blow-up is an error,
not a killed machine). Every mutant must end in a clean result or a one-line user error;
anything else — a traceback, a timeout, a multi-line message — fails the test, listing the seeds.
"""
from __future__ import annotations

import collections
import resource
import signal
import warnings

import numpy as np
import pytest

from accelsim.errors import UserError
from faults import api
from hostile import mutate
from hostile.helpers import BUNDLED, run

MODELS = ("lenet5", "dlrm_small")
MUTANTS = 600
SECONDS_PER_MUTANT = 10


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def _vm_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmSize:"))
    return int(line.split()[1]) * 1024


@pytest.fixture(scope="module")
def originals():
    out = {}
    for name in MODELS:
        with np.load(BUNDLED / name / "eval_inputs.npz") as z:
            inputs = {k: z[k][:4] for k in z.files}
        out[name] = ((BUNDLED / name / "model.onnx").read_bytes(), inputs)
    return out


def _outcome(path, inputs) -> tuple[str, str]:
    try:
        outputs = api.golden_run(api.load_model(path), inputs)
    except UserError as exc:
        message = str(exc)
        return ("refused", message) if message and "\n" not in message else ("multi-line", repr(message))
    assert outputs and all(isinstance(v, np.ndarray) for v in outputs.values())
    return "clean", ""


def test_mutants_end_clean_or_in_one_line(originals, tmp_path):
    counts: collections.Counter = collections.Counter()
    kinds: collections.Counter = collections.Counter()
    failures = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_bytes() + 4 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for seed in range(MUTANTS):
                name = MODELS[seed % len(MODELS)]
                data, inputs = originals[name]
                description, blob = mutate.mutant(data, seed)
                kinds[description.split(":")[0]] += 1
                path = tmp_path / f"{name}_{seed}.onnx"
                path.write_bytes(blob)
                signal.setitimer(signal.ITIMER_REAL, SECONDS_PER_MUTANT)
                try:
                    outcome, detail = _outcome(path, inputs)
                except Hang:
                    outcome, detail = "hang", f"over {SECONDS_PER_MUTANT} s"
                except Exception as exc:  # any other exception is what this test looks for: report it
                    outcome, detail = "traceback", f"{type(exc).__name__}: {str(exc)[:200]}"
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                counts[outcome] += 1
                if outcome not in ("clean", "refused"):
                    failures.append(f"seed {seed} ({name}, {description}): {outcome} {detail}")
                path.unlink()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)
    assert not failures, "\n".join(failures)
    assert counts["clean"] >= 50 and counts["refused"] >= 200, counts
    assert len(kinds) >= 15, kinds  # every kind of mutation was drawn


def test_mutants_through_the_command_line(originals, tmp_path, capsys):
    """A sample of mutants through ``accelsim inspect``: exit 0, or exit 2 with one line."""
    statuses = collections.Counter()
    for seed in range(0, 60, 3):
        name = MODELS[seed % len(MODELS)]
        _description, blob = mutate.mutant(originals[name][0], seed)
        path = tmp_path / f"{name}_{seed}.onnx"
        path.write_bytes(blob)
        status, _out, err = run(capsys, ["inspect", path])
        statuses[status] += 1
        if status == 0:
            assert err == []
        else:
            assert status == 2 and len(err) == 1 and err[0].startswith("accelsim inspect: error: "), (seed, err)
    assert statuses[0] and statuses[2], statuses
