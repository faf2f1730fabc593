"""Hardware config: presets, TOML files, overrides, and one-line errors for bad values."""
from __future__ import annotations

import pytest

from accelsim.config import ConfigError, HardwareConfig, list_presets, load_config


def test_presets_are_shipped_and_load():
    names = list_presets()
    assert {"edge_npu", "tpu_v1", "hbm_datacenter"} <= set(names)
    for name in names:
        hw = load_config(name)
        assert isinstance(hw, HardwareConfig) and hw.name == name


def test_tpu_v1_matches_the_paper():
    hw = load_config("tpu_v1")
    assert (hw.array.rows, hw.array.cols, hw.array.dataflow) == (256, 256, "ws")
    assert hw.clock_ghz == 0.7 and hw.hbm.bandwidth_gbps == 34
    assert hw.input_sram.size_bytes == 24 * 1024 * 1024          # unified buffer
    assert hw.output_sram.size_bytes == 4096 * 256 * 4           # accumulators
    assert hw.hbm_bytes_per_cycle == pytest.approx(34 / 0.7)
    assert hw.hbm_latency_cycles == 70                           # 100 ns at 0.7 GHz


def test_edge_and_datacenter_scale():
    edge, dc = load_config("edge_npu"), load_config("hbm_datacenter")
    assert (edge.array.rows, edge.array.cols) == (16, 16)
    assert edge.weight_sram.size_kib < 100 and edge.hbm.bandwidth_gbps < 30
    assert dc.array.rows >= 128 and dc.weight_sram.size_bytes >= 10 * 2**20
    assert dc.hbm.bandwidth_gbps >= 1000
    assert edge.weight_sram.slot_bytes == edge.weight_sram.size_bytes // 2


def test_overrides_apply_with_toml_types():
    hw = load_config("edge_npu", ["array.rows=32", "array.dataflow=os", "clock_ghz=1",
                                  "weight_sram.double_buffered=false", 'name="mine"'])
    assert hw.array.rows == 32 and hw.array.dataflow == "os" and hw.clock_ghz == 1.0
    assert hw.weight_sram.slots == 1 and hw.weight_sram.slot_bytes == hw.weight_sram.size_bytes
    assert hw.name == "mine"


def test_config_from_file(tmp_path):
    text = (load_config.__globals__["resources"].files("accelsim") / "presets" / "edge_npu.toml").read_text()
    path = tmp_path / "my_chip.toml"
    path.write_text(text.replace("rows = 16", "rows = 8"))
    hw = load_config(str(path))
    assert hw.array.rows == 8 and hw.source == "my_chip.toml"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["array.rowz=3"], "config edge_npu.toml: unknown key 'array.rowz'"),
        (["array.rows=0"], "config edge_npu.toml: 'array.rows' must be > 0, got 0"),
        (["hbm.bandwidth_gbps=-5"], "config edge_npu.toml: 'hbm.bandwidth_gbps' must be > 0, got -5.0"),
        (["weight_sram.size_kib=0"], "config edge_npu.toml: 'weight_sram.size_kib' must be > 0, got 0.0"),
        (["array.dataflow=rs"], "config edge_npu.toml: 'array.dataflow' must be ws | os | is, got 'rs'"),
        (["hbm.burst_bytes=48"], "config edge_npu.toml: 'hbm.burst_bytes' must be a power of two, got 48"),
        (["precision.weight_bytes=3"], "config edge_npu.toml: 'precision.weight_bytes' must be 1, 2 or 4, got 3"),
        (["array.cols=2.5"], "config edge_npu.toml: 'array.cols' must be int, got 2.5"),
        (["weight_sram.double_buffered=1"], "config edge_npu.toml: 'weight_sram.double_buffered' must be bool, got 1"),
        (["vector_unit=4"], "config edge_npu.toml: override 'vector_unit=4' names a table, not a key"),
        (["array.rows"], "config edge_npu.toml: override 'array.rows' is not key.sub=value"),
        (["weight_sram.size_kib=0.3"], "config edge_npu.toml: 'weight_sram.size_kib' = 0.3 KiB is not a whole"),
    ],
)
def test_bad_values_give_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config("edge_npu", overrides)
    text = str(info.value)
    assert text.startswith(message) and "\n" not in text


def test_unknown_and_missing_keys_in_a_file(tmp_path):
    base = (load_config.__globals__["resources"].files("accelsim") / "presets" / "edge_npu.toml").read_text()
    bad = tmp_path / "typo.toml"
    bad.write_text(base.replace("rows = 16", "rowz = 16"))
    with pytest.raises(ConfigError, match=r"^config typo.toml: unknown key 'array.rowz'$"):
        load_config(str(bad))
    missing = tmp_path / "short.toml"
    missing.write_text(base.replace("latency_ns = 100\n", ""))
    with pytest.raises(ConfigError, match=r"^config short.toml: missing key 'hbm.latency_ns'$"):
        load_config(str(missing))
    broken = tmp_path / "broken.toml"
    broken.write_text("name = ")
    with pytest.raises(ConfigError, match=r"^config broken.toml: not valid TOML"):
        load_config(str(broken))
    with pytest.raises(ConfigError, match=r"^config .*nope.toml: cannot read"):
        load_config(str(tmp_path / "nope.toml"))


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match=r"unknown hardware preset 'tpu_v9'; presets: edge_npu"):
        load_config("tpu_v9")


def test_config_is_frozen():
    hw = load_config("edge_npu")
    with pytest.raises(AttributeError):
        hw.array.rows = 3  # type: ignore[misc]
