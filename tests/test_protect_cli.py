"""``accelsim protect``: study, sweep, search end to end on the bundled models; the report
against the table; protection files; bad input as one-line errors that leave results intact."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cli import main as cli
from faults.protect.scheme import SchemeError, load_protection, parse_protection, parse_scheme
from report_checks import assert_png, markdown_table, printed


def _table(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("protect") / "study"
    argv = ["protect", "dlrm_small", "--hw", "edge_npu", "--scheme", "weight_sram=secded:64,interleave=4",
            "--scheme", "pe=parity:8,policy=zero", "--upset", "mcu:1=0.6,2=0.3,4=0.1", "--trials", "300",
            "--batch", "16", "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    return out, argv


def test_study_table_report_and_resume(study, capsys):
    out, argv = study
    rows = _table(out / "protect_table.csv")
    assert [r["structure"] for r in rows] == ["weight_sram", "hbm", "pe", "total"]
    ws = rows[0]
    assert ws["scheme"] == "weight_sram=secded:64,interleave=4" and float(ws["check_bit_overhead"]) == 0.125
    assert float(ws["sdc_fit"]) == 0 and float(ws["due_fit"]) == 0  # clusters of <= 4 cells, interleave 4
    report = (out / "report" / "protect.md").read_text()
    table = markdown_table(report, "structure")
    for r, line in zip(rows, table):
        assert line["structure"] == r["structure"]
        assert printed(line["SDC FIT"].split(" [")[0], float(r["sdc_fit"]), 3)
        assert printed(line["DUE FIT"].split(" [")[0], float(r["due_fit"]), 3)
    assert_png(out / "report" / "protect_fit.png")
    before = (out / "protect_table.csv").read_text()
    capsys.readouterr()
    assert cli.main(argv) == 0  # resumes: same numbers
    assert (out / "protect_table.csv").read_text() == before


def test_other_protection_into_the_same_folder_is_refused(study, capsys):
    out, argv = study
    before = (out / "protect_table.csv").read_text()
    changed = [a if a != "weight_sram=secded:64,interleave=4" else "weight_sram=parity:64" for a in argv]
    assert cli.main(changed) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0]
    assert (out / "protect_table.csv").read_text() == before


def test_protection_file_and_sweep(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('upset = "mcu:1=0.5,2=0.5"\n[hbm]\ncode = "symbol:16+3"\n[weight_sram]\ncode = "parity:64"\n'
                    'policy = "zero"\n')
    protection = load_protection(toml)
    assert protection.scheme("hbm").code.name == "symbol:16+3" and protection.scheme("weight_sram").policy == "zero"
    out = tmp_path / "sweep"
    assert cli.main(["protect", "lenet5", "--protection", str(toml), "--sweep",
                     "hbm=none|secded:64,latency=1|symbol:16+3,latency=2", "--structure", "hbm", "--trials", "200",
                     "--batch", "8", "--out", str(out), "--no-progress"]) == 0
    rows = _table(out / "protect_sweep.csv")
    hbm = [r for r in rows if r["structure"] == "hbm"]
    assert [r["swept_scheme"] for r in hbm] == ["none:64", "secded:64,latency=1", "symbol:16+3,latency=2"]
    assert float(hbm[0]["check_bit_overhead"]) == 0 and float(hbm[2]["check_bit_overhead"]) == pytest.approx(3 / 16)
    assert float(hbm[0]["cycle_overhead"]) == 0 < float(hbm[1]["cycle_overhead"]) < float(hbm[2]["cycle_overhead"])
    # SECDED detects every 2-cell cluster; RS(19,16) corrects those inside one 8-bit symbol and
    # detects only those straddling two symbols (1 in 8 positions)
    assert float(hbm[1]["sdc_fit"]) == float(hbm[2]["sdc_fit"]) == 0
    assert 0 < float(hbm[2]["due_fit"]) < float(hbm[1]["due_fit"]) / 3
    assert_png(out / "report" / "protect_sweep.png")


def test_search_cli(tmp_path, capsys):
    out = tmp_path / "search"
    assert cli.main(["protect", "dlrm_small", "--search", "--budget", "check_bits=5%", "--upset", "mcu:1=0.7,2=0.3",
                     "--trials", "300", "--predict-trials", "300", "--pvf-trials", "20", "--bank-fractions", "0.25",
                     "--candidates", "hbm=none|secded:64,latency=1", "--candidates", "pe=none:32|parity:32",
                     "--batch", "16", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "chosen protection" in text and "upset =" in text
    assert (out / "report" / "protect.md").is_file()
    assert_png(out / "report" / "protect_pareto.png")
    options = _table(out / "search_options.csv")
    assert {o["structure"] for o in options} == {"weight_sram", "hbm", "pe"}
    assert [o["label"] for o in options if o["structure"] == "hbm"] == ["none:64", "secded:64,latency=1"]


@pytest.mark.parametrize("argv,needle", [
    (["--scheme", "weight_sram=secded:63"], "secded width 63"),
    (["--scheme", "dram=secded:64"], "STRUCTURE"),
    (["--scheme", "weight_sram=secded:64,interleave=0"], "interleave"),
    (["--scheme", "weight_sram=secded:64,policy=retry"], "policy"),
    (["--upset", "mcu:1=0.5"], "sum"),
    (["--scheme", "weight_sram.bank=secded:64"], "protected bank"),
    (["--bank-policy", "component=*"], "--bank-fraction"),
    (["--search", "--scheme", "hbm=secded:64"], "--candidates"),
    (["--search", "--budget", "check_bits=five"], "--budget"),
    (["--search", "--candidates", "hbm=secded:64|"], "--candidates"),
    (["--bank-policy", "component=nothing*", "--bank-fraction", "0.25"], "no parameter matches"),
    (["--protection", "/nonexistent.toml"], "protection TOML"),
    (["--trials-for", "embedding_sram=5"], "trials for embedding_sram"),
    (["--trials-for", "hbm"], "--trials-for"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, needle):
    out = tmp_path / "o"
    code = cli.main(["protect", "lenet5", "--trials", "5", "--batch", "4", "--out", str(out), "--no-progress", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err


def test_scheme_specs_round_trip_and_toml_errors(tmp_path):
    for text in ("weight_sram=secded:64,interleave=4", "hbm=symbol:16+3,latency=2", "pe=parity:32,policy=zero",
                 "weight_sram.bank=dected:64", "weight_sram=secded:64,bits=31-23,elem=32,interleave=2"):
        area, scheme = parse_scheme(text)
        assert parse_scheme(f"{area}={scheme.name}") == (area, scheme)
    only_bank = tmp_path / "bank.toml"
    only_bank.write_text('[weight_sram.bank]\ncode = "secded:64"\n')
    assert load_protection(only_bank).schemes[0][0] == "weight_sram.bank"
    for body, needle in (('[weight_sram]\ncode = "secded:64"\nspeed = 1\n', "unknown key 'speed'"),
                         ('[dram]\ncode = "secded:64"\n', "unknown section"), ("upset = 3\n", "'upset'"),
                         ("[weight_sram\n", "not a readable"), ('[hbm]\ninterleave = 2\n', "needs 'code'")):
        bad = tmp_path / "bad.toml"
        bad.write_text(body)
        with pytest.raises(SchemeError, match=needle):
            load_protection(bad)
    with pytest.raises(SchemeError, match="at most once"):
        parse_protection(["hbm=secded:64", "hbm=parity:64"])
