"""A researcher's notebook, as a script: the Python API end to end on the bundled LeNet-5.

    python examples/walkthrough.py [OUT_DIR]

1. load a model and its evaluation inputs, run the golden inference;
2. schedule one inference on an edge NPU and look at per-op cycles and the residency table;
3. a PVF campaign by layer (single bit flips, fp32 storage): a table with Wilson intervals;
4. an AVF study of the weight SRAM and the PE registers, direct and joined with PVF;
5. a protection study: SECDED with 4-way column interleaving on the weight SRAM and parity on
   the PE registers under multi-cell upsets: SDC / DUE FIT and check-bit overheads;
6. read the campaign and the study back from their folders (everything resumes: re-running
   adds nothing).

Sized to run in about a minute on two cores. Prints the tables it computes.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pandas as pd

from faults import api


def main(out_dir: str = "walkthrough_out") -> dict:
    out = Path(out_dir)
    pd.set_option("display.width", 160)

    # 1. model, inputs, golden run
    model = api.load_model("lenet5")
    inputs = api.load_inputs(model, batch=16)
    logits = api.golden_run(model, inputs)["logits"]
    print(f"{model.name}: {len(model.program.parameters)} parameter tensors; logits {logits.shape}")

    # 2. schedule on an edge NPU, weights stored in fp32
    sched = api.schedule(model, inputs, "edge_npu", ["precision.weight_bytes=4"])
    ops = pd.DataFrame({"op": sched.op_names, "cycles": sched.ops["cycles"], "macs": sched.ops["macs"]})
    print(f"\n{sched.total_cycles} cycles for one batch of {logits.shape[0]}\n{ops.head(8).to_string()}")

    # 3. PVF by layer
    campaign = api.pvf_campaign(model, inputs, api.CampaignConfig(by=("layer",), trials=150, seed=1),
                                out / "pvf", workers=1)
    by_layer = campaign.table("layer")[["value", "n", "sdc", "pvf", "lo", "hi"]]
    print(f"\nPVF by layer (Wilson 95%):\n{by_layer.to_string(index=False)}")

    # 4. AVF of the weight SRAM and the PE registers, joined with the campaign above
    config = api.StudyConfig(structures=("weight_sram", "pe"), trials=200, seed=2, sampling="occupied",
                             join=api.JoinConfig(pvf_dir=str(out / "pvf"), pvf_by="layer"))
    study = api.avf_study(model, inputs, "edge_npu", config, out / "avf", overrides=["precision.weight_bytes=4"])
    table = study.table()[["structure", "trials", "direct_avf", "direct_lo", "direct_hi", "joined_avf"]]
    print(f"\nAVF per structure:\n{table.to_string(index=False)}")
    print(f"\nFIT:\n{study.fit_table()[['structure', 'sdc_fit', 'sdc_fit_lo', 'sdc_fit_hi']].to_string(index=False)}")

    # 5. protection under multi-cell upsets (clusters of 1, 2 or 4 adjacent cells)
    protection = api.parse_protection(["weight_sram=secded:64,interleave=4", "pe=parity:32"], "mcu:1=0.7,2=0.2,4=0.1")
    protect = api.protect_study(model, inputs, "edge_npu", protection,
                                api.ProtectConfig(structures=("weight_sram", "pe"), trials=300, seed=3),
                                out / "protect", overrides=["precision.weight_bytes=4"])
    fit = pd.DataFrame([dataclasses.asdict(r) for r in protect])
    print(f"\nUnder protection:\n{fit[['structure', 'scheme', 'check_bit_overhead', 'sdc_fit', 'due_fit']].to_string()}")

    # 6. read back
    again = api.pvf_results(out / "pvf")
    sites = api.avf_sites(out / "avf")
    print(f"\n{len(again.trials())} stored PVF trials; {len(sites)} stored AVF sites "
          f"({int((sites['status'] == 'live').sum())} live)")

    return {"logits": logits, "total_cycles": sched.total_cycles, "pvf_by_layer": by_layer,
            "avf": study, "sites": sites, "population": again.population(), "protect": protect}


if __name__ == "__main__":
    main(*sys.argv[1:2])
