"""Fast path on real exported graphs (quick zoo builds, legacy and dynamo exporters): every
fault's output is bit-identical to the executor's full re-run, under a tight golden budget too."""
from __future__ import annotations

import numpy as np
import pytest

from accelsim import executor
from faults.common import fault_models as models
from faults.inject.engine import FastInjector, Fault
from frontend import load_onnx
from test_zoo import built, feeds_for, onnx_files, zoo_dir  # noqa: F401 (session fixture)

CASES = [("tinybert_tweets", 12), ("dlrm_bag", 24), ("resnet18", 10)]


def _bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.itemsize}")


@pytest.mark.parametrize("name,batch", CASES)
def test_exported_graphs_bit_exact(name, batch, zoo_dir):  # noqa: F811
    folder = built(name, zoo_dir)
    for path in onnx_files(folder):
        program = load_onnx(path)
        inputs = feeds_for(folder, path)
        if len({np.shape(v)[0] for v in inputs.values()}) == 1:
            inputs = {k: v[:batch] for k, v in inputs.items()}
        inj = FastInjector(program, inputs, budget_bytes=1 << 16)  # most activations recomputed
        assert inj.gold.separable, path.name
        names = list(program.parameters)
        faults = []
        for t in range(24):
            rng = np.random.default_rng([name.__len__(), t])
            param = names[rng.integers(len(names))]
            corruption = models.draw(models.FaultModel("sbf"), inj.stored(param), rng)
            faults.append(Fault(param, corruption, np.sort(rng.choice(inj.batch, size=2, replace=False))))
        changed = 0
        for f, res in zip(faults, inj.evaluate(faults)):
            full = executor.run(program, inputs, parameter_values={f.param: inj.corrupted_value(f)})
            ref = full.outputs[inj.output][f.rows]
            assert np.array_equal(_bits(res.output), _bits(ref)), (path.name, f.param, f.corruption.index)
            assert res.early_masked == np.array_equal(_bits(ref), _bits(inj.golden_output[f.rows]))
            changed += int(not res.early_masked)
        assert changed > 0, path.name
