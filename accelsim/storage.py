"""How parameters are stored in accelerator memory: fp32, fp16, bf16 or int8.

Faults act on the stored bits (``StoredTensor.bits``), and compute always sees the decoded
fp32 value (``StoredTensor.decode()``), with fp32 accumulation.

* fp32: IEEE binary32, bits as uint32.
* fp16: IEEE binary16 (numpy's round-to-nearest-even conversion), bits as uint16.
* bf16: the upper 16 bits of binary32 after round-to-nearest-even, bits as uint16
  (NaN stays NaN).
* int8: symmetric per-output-channel quantisation ``q = clip(round(w / s), -127, 127)``,
  ``s = max|w| / 127`` over each slice along ``Parameter.channel_axis`` (one scale for the
  whole tensor when it is ``None``; ``s = 1`` for an all-zero slice); bits are the two's
  complement byte as uint8, and the scales are stored fp32 (4 bytes each): they are stored bits
  too, addressed as the pseudo-parameter ``<name>#scale`` (:func:`scale_name`, one element per
  channel, :func:`scale_count`). Decoding gives ``q * s`` in fp32: weights are int8,
  activations stay fp32 (W8A32) — see README, limitations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from accelsim.errors import UserError

FORMATS = ("fp32", "fp16", "bf16", "int8")
SCALED_FORMATS = ("int8",)  # formats whose per-channel fp32 scales are stored beside the values
SCALE_SUFFIX = "#scale"

BITS_PER_ELEMENT = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8}
_BITS_DTYPE = {"fp32": np.uint32, "fp16": np.uint16, "bf16": np.uint16, "int8": np.uint8}


class StorageError(UserError, ValueError):
    """Unknown storage format or malformed stored tensor."""


def check_format(fmt: str) -> str:
    """Return ``fmt`` if it is a known storage format, else raise a one-line error."""
    if fmt not in FORMATS:
        raise StorageError(f"unknown storage dtype {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


@dataclass(frozen=True)
class StoredTensor:
    """A parameter as stored: raw bit patterns plus (int8 only) fp32 scales.

    Attributes:
        fmt: storage format name.
        bits: unsigned array of the parameter's shape (uint32/uint16/uint8).
        scales: int8 only — fp32 scales broadcastable against ``bits`` (size-1 axes except the
            channel axis); ``None`` otherwise.
    """

    fmt: str
    bits: np.ndarray
    scales: np.ndarray | None = None

    @property
    def bits_per_element(self) -> int:
        return BITS_PER_ELEMENT[self.fmt]

    def with_bits(self, bits: np.ndarray) -> "StoredTensor":
        """Same tensor with other bit patterns (e.g. after a fault)."""
        return StoredTensor(self.fmt, np.asarray(bits, dtype=_BITS_DTYPE[self.fmt]), self.scales)

    def decode(self) -> np.ndarray:
        """The fp32 values compute sees (shape of ``bits``)."""
        return decode_bits(self.fmt, self.bits, self.scales)


def encode(values: np.ndarray, fmt: str, channel_axis: int | None = None) -> StoredTensor:
    """Store fp32 ``values`` in format ``fmt`` (see module docstring for the rules)."""
    check_format(fmt)
    values = np.asarray(values, dtype=np.float32)
    if fmt == "fp32":
        return StoredTensor(fmt, values.view(np.uint32).copy())
    if fmt == "fp16":
        with np.errstate(over="ignore"):
            return StoredTensor(fmt, values.astype(np.float16).view(np.uint16).copy())
    if fmt == "bf16":
        return StoredTensor(fmt, fp32_to_bf16_bits(values))
    scales = int8_scales(values, channel_axis)
    quantised = np.clip(np.rint(values / scales), -127, 127).astype(np.int8)
    return StoredTensor(fmt, quantised.view(np.uint8).copy(), scales)


def decode_bits(fmt: str, bits: np.ndarray, scales: np.ndarray | None = None) -> np.ndarray:
    """fp32 values of raw stored ``bits`` in format ``fmt``."""
    check_format(fmt)
    if fmt == "fp32":
        return np.asarray(bits, dtype=np.uint32).view(np.float32).copy()
    if fmt == "fp16":
        return np.asarray(bits, dtype=np.uint16).view(np.float16).astype(np.float32)
    if fmt == "bf16":
        return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    if scales is None:
        raise StorageError("int8 tensor has no scales")
    return np.asarray(bits, dtype=np.uint8).view(np.int8).astype(np.float32) * scales


def fp32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """Round fp32 to bf16 (nearest, ties to even); NaN kept quiet. Returns uint16 bits."""
    raw = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = ((raw >> 16) & 1) + 0x7FFF
    rounded = ((raw + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(values, dtype=np.float32))
    if nan.any():
        rounded = np.where(nan, ((raw >> 16) | 0x40).astype(np.uint16), rounded)
    return rounded


def int8_scales(values: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """Symmetric int8 scales: ``max|w| / 127`` per slice along ``channel_axis``."""
    values = np.asarray(values, dtype=np.float32)
    if channel_axis is None or values.ndim == 0:
        amax = np.array(np.max(np.abs(values)) if values.size else 0.0, dtype=np.float32)
        amax = amax.reshape((1,) * values.ndim)
    else:
        axes = tuple(a for a in range(values.ndim) if a != channel_axis % values.ndim)
        amax = np.max(np.abs(values), axis=axes, keepdims=True)
    scales = (amax / np.float32(127.0)).astype(np.float32)
    return np.where(scales > 0, scales, np.float32(1.0)).astype(np.float32)


def store_parameters(
    values: Mapping[str, np.ndarray], channel_axes: Mapping[str, int | None], fmt: str
) -> dict[str, StoredTensor]:
    """Encode every parameter of a program (name -> fp32 value) in ``fmt``."""
    return {name: encode(value, fmt, channel_axes.get(name)) for name, value in values.items()}


def scale_name(param: str) -> str:
    """Name of the pseudo-parameter holding the stored scales of ``param``."""
    return param + SCALE_SUFFIX


def scale_base(name: str) -> str | None:
    """The parameter whose scales ``name`` holds, or None if ``name`` is not a scale."""
    return name[: -len(SCALE_SUFFIX)] if name.endswith(SCALE_SUFFIX) else None


def scale_count(shape: tuple[int, ...], channel_axis: int | None) -> int:
    """Scales of a parameter of ``shape``: one per slice along ``channel_axis``, or 1."""
    if channel_axis is None or not shape:
        return 1
    return int(shape[channel_axis % len(shape)])

