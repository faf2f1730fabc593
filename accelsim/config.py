"""Hardware configuration of the simulated accelerator, loaded from TOML.

A configuration is a tree of frozen dataclasses whose field names carry their units. It is
read from a preset shipped with accelsim (``accelsim/presets/NAME.toml``, see
:func:`list_presets`) or from a TOML file, then changed by ``key.sub=value`` overrides (the
CLI's ``--set``). Every key is required (no hidden defaults); an unknown key, a missing key, a
value of the wrong type or an impossible value (zero or negative size, unknown dataflow, word
size that is not a power of two, ...) raises :class:`ConfigError` with one line naming the
file and the key path, e.g. ``config edge_npu.toml: unknown key 'array.rowz'``. Numbers are
finite and bounded (ints below 2^31, sizes and latencies below ~1e9 of their unit, clock in
1 MHz..1 THz, bandwidth at least 1 MB/s), so every derived count fits an int64; a config
file must be a regular UTF-8 file of at most 1 MiB.

TOML layout (every table and key below is required)::

    name = "edge_npu"          # free text
    clock_ghz = 0.8            # array / SRAM / vector clock
    [array]            rows, cols (PEs), dataflow ("ws" | "os" | "is")
    [weight_sram]      size_kib, word_bytes, banks, double_buffered   # parameter tiles
    [input_sram]       (same keys)                                     # activation tiles
    [output_sram]      (same keys)                                     # accumulators / results
    [embedding_sram]   (same keys)                                     # gathered embedding rows
    [hbm]              size_gib, bandwidth_gbps (1e9 B/s), latency_ns, burst_bytes
    [vector_unit]      lanes (elements per cycle), latency_cycles (pipeline depth per op)
    [precision]        weight_bytes, activation_bytes, accumulator_bytes (1, 2 or 4),
                       scale_bytes (4: int8 weights keep one fp32 scale per output channel
                       beside them in HBM and SRAM; 0: scales not modelled)

``precision.weight_bytes`` is the stored size of one parameter element; it must match the
storage dtype the executor uses (fp32 = 4, fp16/bf16 = 2, int8 = 1) when residency is joined
with fault injection.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable

from accelsim.errors import UserError

DATAFLOWS = ("ws", "os", "is")


class ConfigError(UserError, ValueError):
    """A configuration file or override is invalid; the message is one line naming the key."""


@dataclass(frozen=True)
class ArrayConfig:
    """Systolic array: ``rows`` × ``cols`` PEs and its dataflow ("ws", "os" or "is")."""

    rows: int
    cols: int
    dataflow: str


@dataclass(frozen=True)
class SramConfig:
    """One on-chip SRAM buffer.

    Attributes:
        size_kib: capacity in KiB (1024 bytes); with double buffering it is split into two
            equal slots (one filled by DMA while the other is read by compute).
        word_bytes: bytes per SRAM word (the unit a multi-bit burst fault is aligned to).
        banks: number of banks (the capacity is split evenly across banks).
        double_buffered: two slots (True) or one (False).
    """

    size_kib: float
    word_bytes: int
    banks: int
    double_buffered: bool

    @property
    def size_bytes(self) -> int:
        """Capacity in bytes."""
        return int(round(self.size_kib * 1024))

    @property
    def slots(self) -> int:
        """Number of slots: 2 if double buffered, else 1."""
        return 2 if self.double_buffered else 1

    @property
    def slot_bytes(self) -> int:
        """Bytes of one slot (the most one tile may occupy)."""
        return self.size_bytes // self.slots


@dataclass(frozen=True)
class HbmConfig:
    """Off-chip memory: capacity, bandwidth in GB/s (1e9 bytes/s), access latency, burst."""

    size_gib: float
    bandwidth_gbps: float
    latency_ns: float
    burst_bytes: int

    @property
    def size_bytes(self) -> int:
        return int(round(self.size_gib * 1024**3))


@dataclass(frozen=True)
class VectorConfig:
    """Vector unit for non-GEMM ops: ``lanes`` elements per cycle, ``latency_cycles`` per op."""

    lanes: int
    latency_cycles: int


@dataclass(frozen=True)
class PrecisionConfig:
    """Bytes per stored element: weights (parameters), activations, accumulators, and the
    fp32 scale stored per output channel beside int8 weights (``scale_bytes``: 4, or 0 to keep
    the scales off the modelled memories, e.g. to compare with a simulator that has none; used
    only when ``weight_bytes`` is 1)."""

    weight_bytes: int
    activation_bytes: int
    accumulator_bytes: int
    scale_bytes: int

    @property
    def stores_scales(self) -> bool:
        """int8 weights whose scales sit in HBM / SRAM beside them."""
        return self.weight_bytes == 1 and self.scale_bytes > 0


@dataclass(frozen=True)
class HardwareConfig:
    """A whole accelerator. ``source`` is where it was loaded from (for messages)."""

    name: str
    clock_ghz: float
    array: ArrayConfig
    weight_sram: SramConfig
    input_sram: SramConfig
    output_sram: SramConfig
    embedding_sram: SramConfig
    hbm: HbmConfig
    vector_unit: VectorConfig
    precision: PrecisionConfig
    source: str = dataclasses.field(default="", compare=False)

    @property
    def hbm_bytes_per_cycle(self) -> float:
        """HBM bandwidth in bytes per accelerator clock cycle."""
        return self.hbm.bandwidth_gbps / self.clock_ghz

    @property
    def hbm_latency_cycles(self) -> int:
        """HBM access latency rounded up to whole clock cycles."""
        return math.ceil(self.hbm.latency_ns * self.clock_ghz - 1e-9)

    def sram(self, structure: str) -> SramConfig:
        """The SRAM named ``structure`` (weight_sram, input_sram, output_sram, embedding_sram)."""
        if structure not in SRAM_NAMES:
            raise ConfigError(f"unknown SRAM {structure!r}; choose one of {', '.join(SRAM_NAMES)}")
        return getattr(self, structure)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of the TOML keys (``source`` left out)."""
        data = dataclasses.asdict(self)
        data.pop("source")
        return data


SRAM_NAMES = ("weight_sram", "input_sram", "output_sram", "embedding_sram")

# key -> (type, check, description of the valid range[, (lowest, highest) magnitude]); the tree
# mirrors the TOML tables. The magnitude bounds keep every derived count (cycles, bytes, bits)
# finite and inside int64: no accelerator is near them, and inf/NaN are refused.
_INT_MAX = 2**31 - 1
_POS_INT = (int, lambda v: v > 0, "> 0", (1, _INT_MAX))
_POS_FLOAT = (float, lambda v: v > 0, "> 0", (0.0, 2.0**30))
_NONNEG_FLOAT = (float, lambda v: v >= 0, ">= 0", (0.0, 1e9))
_POW2 = (int, lambda v: v > 0 and v & (v - 1) == 0, "a power of two", (1, 2**20))
_ELEM = (int, lambda v: v in (1, 2, 4), "1, 2 or 4")
_CLOCK = (float, lambda v: v > 0, "> 0", (1e-3, 1e3))  # 1 MHz .. 1 THz
_BANDWIDTH = (float, lambda v: v > 0, "> 0", (1e-3, 1e9))  # 1 MB/s .. 1 EB/s
_SRAM = {
    "size_kib": _POS_FLOAT,
    "word_bytes": _POW2,
    "banks": _POS_INT,
    "double_buffered": (bool, lambda v: True, "true or false"),
}
_SCHEMA: dict[str, Any] = {
    "name": (str, lambda v: v.strip() != "", "non-empty"),
    "clock_ghz": _CLOCK,
    "array": {
        "rows": _POS_INT,
        "cols": _POS_INT,
        "dataflow": (str, lambda v: v in DATAFLOWS, " | ".join(DATAFLOWS)),
    },
    **{name: _SRAM for name in SRAM_NAMES},
    "hbm": {
        "size_gib": _POS_FLOAT,
        "bandwidth_gbps": _BANDWIDTH,
        "latency_ns": _NONNEG_FLOAT,
        "burst_bytes": _POW2,
    },
    "vector_unit": {"lanes": _POS_INT, "latency_cycles": (int, lambda v: v >= 0, ">= 0", (0, _INT_MAX))},
    "precision": {"weight_bytes": _ELEM, "activation_bytes": _ELEM, "accumulator_bytes": _ELEM,
                  "scale_bytes": (int, lambda v: v in (0, 4), "0 or 4")},
}
_CLASSES = {
    "array": ArrayConfig,
    **{name: SramConfig for name in SRAM_NAMES},
    "hbm": HbmConfig,
    "vector_unit": VectorConfig,
    "precision": PrecisionConfig,
}


_MAX_CONFIG_BYTES = 1 << 20


def list_presets() -> list[str]:
    """Names of the presets shipped in ``accelsim/presets`` (sorted)."""
    folder = resources.files("accelsim") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_config(preset_or_path: str, overrides: Iterable[str] = ()) -> HardwareConfig:
    """Load a preset by name, or a TOML file by path, then apply ``key.sub=value`` overrides.

    ``preset_or_path`` is a path if it ends in ``.toml`` or names an existing file, else a
    preset name. Override values are TOML literals (``array.rows=32``,
    ``weight_sram.double_buffered=false``); a bare word is taken as a string
    (``array.dataflow=os``).
    """
    if preset_or_path.endswith(".toml") or os.path.isfile(preset_or_path):
        label = os.path.basename(preset_or_path)
        if os.path.exists(preset_or_path) and not os.path.isfile(preset_or_path):
            raise ConfigError(f"config {preset_or_path}: not a regular file")  # a folder, FIFO, device
        try:
            with open(preset_or_path, "rb") as handle:
                raw = handle.read(_MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"config {preset_or_path}: cannot read: {exc.strerror}") from None
        if len(raw) > _MAX_CONFIG_BYTES:
            raise ConfigError(f"config {preset_or_path}: larger than {_MAX_CONFIG_BYTES} bytes; not a config")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"config {preset_or_path}: not a TOML file (not UTF-8 text)") from None
    else:
        if preset_or_path not in list_presets():
            raise ConfigError(
                f"unknown hardware preset {preset_or_path!r}; presets: {', '.join(list_presets())}"
                " (or give a path to a .toml file)"
            )
        label = f"{preset_or_path}.toml"
        text = (resources.files("accelsim") / "presets" / label).read_text("utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {label}: not valid TOML: {exc}") from None
    for override in overrides:
        _apply_override(data, override, label)
    return _build(data, label)


def _apply_override(data: dict[str, Any], override: str, label: str) -> None:
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"config {label}: override {override!r} is not key.sub=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    parts = key.split(".")
    schema: Any = _SCHEMA
    node = data
    for depth, part in enumerate(parts):
        if not isinstance(schema, dict) or part not in schema:
            raise ConfigError(f"config {label}: unknown key '{key}' in override {override!r}")
        schema = schema[part]
        if depth < len(parts) - 1:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config {label}: '{'.'.join(parts[:depth + 1])}' is not a table")
    if isinstance(schema, dict):
        raise ConfigError(f"config {label}: override {override!r} names a table, not a key")
    node[parts[-1]] = value


def _build(data: dict[str, Any], label: str) -> HardwareConfig:
    values = _check_table(data, _SCHEMA, "", label)
    kwargs = {
        key: _CLASSES[key](**value) if key in _CLASSES else value for key, value in values.items()
    }
    return HardwareConfig(**kwargs, source=label)


def _check_table(data: Any, schema: dict[str, Any], prefix: str, label: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"config {label}: '{prefix.rstrip('.')}' must be a table")
    for key in data:
        if key not in schema:
            raise ConfigError(f"config {label}: unknown key '{prefix}{key}'")
    out: dict[str, Any] = {}
    for key, rule in schema.items():
        path = f"{prefix}{key}"
        if key not in data:
            raise ConfigError(f"config {label}: missing key '{path}'")
        if isinstance(rule, dict):
            out[key] = _check_table(data[key], rule, f"{path}.", label)
            continue
        kind, check, valid = rule[:3]
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(
                f"config {label}: '{path}' must be {kind.__name__}, got {value!r}"
            )
        if not check(value):
            raise ConfigError(f"config {label}: '{path}' must be {valid}, got {value!r}")
        if len(rule) > 3:
            low, high = rule[3]
            if not value <= high:  # also inf and NaN
                raise ConfigError(f"config {label}: '{path}' must be at most {high:g}, got {value!r}")
            if value < low:
                raise ConfigError(f"config {label}: '{path}' must be at least {low:g}, got {value!r}")
        out[key] = value
    for name in SRAM_NAMES:
        sram = out.get(name) if prefix == "" else None
        if sram is not None:
            size = sram["size_kib"] * 1024
            unit = sram["word_bytes"] * sram["banks"] * (2 if sram["double_buffered"] else 1)
            if size != int(size) or int(size) % unit:
                raise ConfigError(
                    f"config {label}: '{name}.size_kib' = {sram['size_kib']} KiB is not a whole "
                    f"number of words per bank and slot (word_bytes × banks × slots = {unit} B)"
                )
    return out
