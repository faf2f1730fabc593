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

from accelsim.errors import InputWarning

from faults.common.files import check_output_dir, check_output_file
from faults.pvf.plan import BACKENDS, CampaignConfig
from faults.pvf.results import CampaignResults
from faults.avf.fit import parse_fit
from faults.avf.sites import SITE_STRUCTURES
from faults.avf.study import JoinConfig, StudyConfig, StudyResult
from faults.avf.sweep import SweepConfig
from faults.protect.candidates import parse_bank_scheme, parse_candidates
from faults.protect.scheme import Protection, load_protection, parse_protection
from faults.protect.search import Budget, SearchConfig
from faults.protect.study import ProtectConfig
from faults.protect.sweep import parse_sweep as parse_protect_sweep
from faults.protect.upsets import parse_upset_model
from faults.api.models import (InputError, Model, bundled_models, check_inputs, golden_run, hardware, load_inputs,
                               load_model, onnx_op_histogram, save_outputs, schedule, write_schedule)
from faults.api.protection import (protect_results, protect_search, protect_study, protect_sweep, protected_bank,
                                   search_results)
from faults.api.studies import avf_results, avf_sites, avf_study, avf_sweep, pvf_campaign, pvf_results, report

__all__ = [
    "Model", "InputError", "CampaignConfig", "StudyConfig", "JoinConfig", "SweepConfig", "CampaignResults",
    "StudyResult", "bundled_models", "load_model", "load_inputs", "golden_run", "hardware", "schedule",
    "pvf_campaign", "pvf_results", "avf_study", "avf_sweep", "avf_results", "avf_sites", "report",
    "onnx_op_histogram", "save_outputs", "parse_fit", "BACKENDS", "SITE_STRUCTURES",
    "check_inputs", "check_output_dir", "check_output_file", "write_schedule", "InputWarning",
    "Protection", "ProtectConfig", "SearchConfig", "Budget", "parse_protection", "load_protection",
    "parse_candidates", "parse_bank_scheme", "parse_protect_sweep", "parse_upset_model", "protected_bank",
    "protect_study", "protect_sweep", "protect_search", "protect_results", "search_results",
]
