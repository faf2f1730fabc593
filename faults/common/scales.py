"""Faults in the scales of scaled storage formats (int8: one fp32 scale per output channel).

An int8 parameter is stored as its int8 values *and* its fp32 scales (``accelsim.storage``);
both are stored bits that an upset can hit. The scales of parameter ``p`` are addressed as the
pseudo-parameter ``p#scale`` (role ``scale``): ``C`` fp32 elements, one per channel along
``Parameter.channel_axis`` (``C = 1`` when the whole tensor shares one scale). A fault model
acts on the scales' fp32 bit patterns exactly as on any fp32 tensor (:func:`draw_scale`); its
effect is that every element of a corrupted channel decodes to ``q · s'`` instead of ``q · s``
(:func:`scaled_values`), so a scale fault is a multi-element corruption of ``p``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.storage import SCALE_SUFFIX, StoredTensor, scale_count, scale_name
from accelsim.storage import scale_base as base_of

from faults.common.fault_models import Corruption, FaultModel, draw

SCALE_ROLE = "scale"
__all__ = ["SCALE_SUFFIX", "SCALE_ROLE", "scale_name", "base_of", "scale_count", "channel_of_elements",
           "stored_scales", "ScaleCorruption", "draw_scale", "scaled_values", "scale_corruption"]


def channel_of_elements(shape: tuple[int, ...], channel_axis: int | None) -> np.ndarray:
    """int64 [size]: the channel (scale index) of every flat element of a parameter of ``shape``."""
    size = int(np.prod(shape, dtype=np.int64))
    if channel_axis is None or not shape:
        return np.zeros(size, dtype=np.int64)
    return np.unravel_index(np.arange(size, dtype=np.int64), shape)[channel_axis % len(shape)].astype(np.int64)


def stored_scales(stored: StoredTensor) -> StoredTensor:
    """The scales of an int8 tensor as a flat fp32 stored tensor (its bits are what upsets hit)."""
    if stored.scales is None:
        raise ValueError(f"a {stored.fmt} tensor has no scales")
    flat = np.ascontiguousarray(np.asarray(stored.scales, dtype=np.float32).reshape(-1))
    return StoredTensor("fp32", flat.view(np.uint32).copy())


@dataclass(frozen=True)
class ScaleCorruption(Corruption):
    """A corruption of scales: ``index`` are the parameter's elements in the corrupted channels
    (their int8 bits unchanged), ``channels`` the scale indices hit, ``old_scales`` /
    ``new_scales`` their fp32 values; ``bit`` / ``nflips`` refer to the scales' bits."""

    channels: np.ndarray
    old_scales: np.ndarray
    new_scales: np.ndarray


def draw_scale(model: FaultModel, stored: StoredTensor, shape: tuple[int, ...], channel_axis: int | None,
               rng: np.random.Generator, bit: int | None = None) -> ScaleCorruption:
    """Draw one fault of ``model`` in the fp32 scales of the int8 tensor ``stored``."""
    scales = stored_scales(stored)
    hit = draw(model, scales, rng, bit=bit)
    channel = channel_of_elements(shape, channel_axis)
    index = np.flatnonzero(np.isin(channel, hit.index)).astype(np.int64)
    q = stored.bits.reshape(-1)[index]
    old = hit.old_bits.astype(np.uint32).view(np.float32)
    new = hit.new_bits.astype(np.uint32).view(np.float32)
    return ScaleCorruption(index, q, q.copy(), hit.bit, hit.nflips, hit.index.astype(np.int64), old.copy(), new.copy())


def scaled_values(stored: StoredTensor, shape: tuple[int, ...], channel_axis: int | None,
                  corruption: ScaleCorruption) -> np.ndarray:
    """fp32 values of ``corruption.index`` decoded with the corrupted scales (``q · s'``, in fp32
    as ``accelsim.storage.decode_bits`` computes ``q · s``)."""
    channel = channel_of_elements(shape, channel_axis)[corruption.index]
    lookup = {int(c): s for c, s in zip(corruption.channels, corruption.new_scales)}
    new_scale = np.array([lookup[int(c)] for c in channel], dtype=np.float32)
    q = stored.bits.reshape(-1)[corruption.index].view(np.int8).astype(np.float32)
    return q * new_scale


def scale_corruption(stored: StoredTensor, shape: tuple[int, ...], channel_axis: int | None,
                     channels, new_scale_bits, bit: int = -1) -> ScaleCorruption:
    """The corruption that stores ``new_scale_bits`` (fp32 patterns) in the scales ``channels``."""
    scales = stored_scales(stored).bits
    channels = np.asarray(channels, dtype=np.int64).reshape(-1)
    new_bits = np.asarray(new_scale_bits, dtype=np.uint32).reshape(-1)
    old_bits = scales[channels]
    nflips = int(sum(int(x).bit_count() for x in (old_bits ^ new_bits).tolist()))
    index = np.flatnonzero(np.isin(channel_of_elements(shape, channel_axis), channels)).astype(np.int64)
    q = stored.bits.reshape(-1)[index]
    return ScaleCorruption(index, q, q.copy(), int(bit), nflips, channels, old_bits.view(np.float32).copy(),
                           new_bits.view(np.float32).copy())
