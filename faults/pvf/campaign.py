"""Run (or resume) a deterministic PVF campaign into its results folder.

The campaign's trials are fixed by its configuration (:mod:`faults.pvf.plan`); they are
evaluated in chunks whose partition depends only on the configuration, so results are
bit-identical whatever the number of workers or interruptions (:mod:`faults.pvf.runner`).
Each finished chunk is appended to ``OUT/trials.sqlite`` in one transaction; re-running the
same campaign skips stored chunks. The store records the campaign's identity — its
configuration (sample size aside), resolved criterion, and the fingerprints of the program and
the inputs — and refuses to resume into another campaign, model or input set.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Mapping

import numpy as np

from accelsim.ir import Program

from faults.common.fingerprint import fingerprint_inputs, fingerprint_program
from faults.pvf.plan import BACKENDS, CampaignConfig, CampaignError, make_plan, resolve_criterion
from faults.pvf.runner import CampaignSummary, Runner
from faults.pvf.store import TrialStore


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def campaign_identity(program: Program, inputs: Mapping[str, np.ndarray], config: CampaignConfig,
                      criterion: str, model_id: str | None = None) -> dict:
    """What a campaign's store must match to be resumed or joined: configuration (sample size
    aside), resolved criterion, program and input fingerprints, and the model file id if any."""
    identity = config.identity()
    identity["criterion"] = criterion
    identity["program"] = fingerprint_program(program)
    identity["inputs"] = fingerprint_inputs(inputs)
    identity["model"] = model_id or identity["program"]
    return identity


def run_campaign(
    program: Program,
    inputs: Mapping[str, np.ndarray],
    config: CampaignConfig,
    out_dir: str,
    *,
    workers: int | None = None,
    backend: str = "local",
    progress: bool = True,
    model_id: str | None = None,
    model_name: str | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> CampaignSummary:
    """Run (or resume) a campaign; results go to ``out_dir/trials.sqlite``.

    Args:
        workers: local worker processes (default: every core this process may use).
        backend: "local" or "ray" (Ray must be installed: the ``ray`` extra).
        model_id: an id of the model file (e.g. name and digest), recorded in the identity.
        model_name: a display name for reports.
        on_chunk: called with the number of trials of each finished chunk.
    """
    if backend not in BACKENDS:
        raise CampaignError(f"unknown backend {backend!r}; choose local or ray")
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise CampaignError(f"workers must be >= 1, got {workers}")
    if config.output is not None and config.output not in program.output_names:
        raise CampaignError(
            f"unknown graph output {config.output!r}; outputs are {', '.join(program.output_names)}"
        )
    plan = make_plan(program, config)
    criterion = resolve_criterion(program, inputs, config)
    identity = campaign_identity(program, inputs, config, criterion, model_id)
    settings = {"trials": config.trials, "model_name": model_name or ""}
    with TrialStore(out_dir, identity, settings=settings) as store:
        store.write_cells([
            {"cell": c.index, "dtype": c.dtype, "bit": c.bit, "label": c.label(),
             "keys": json.dumps(dict(c.keys)), "params": ",".join(c.params),
             "bits_total": c.bits_total, "population": plan.populations[c.index],
             "planned": plan.planned[c.index]} for c in plan.cells
        ])
        runner = Runner(program, inputs, config, criterion, store, plan, workers, backend, progress, on_chunk,
                        key=store.meta("identity_hash") or "campaign")
        return runner.run(out_dir)
