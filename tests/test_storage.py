"""Parameter storage formats against straightforward references (numpy / torch)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from accelsim import storage


@pytest.fixture()
def values() -> np.ndarray:
    rng = np.random.default_rng(7)
    w = rng.normal(0, 0.3, size=(6, 5, 3)).astype(np.float32)
    w[0, 0, 0] = 0.0
    w[1, 1, 1] = -3.5e-9  # tiny: underflows in fp16
    w[2, 2, 2] = 70000.0  # overflows fp16 to inf
    return w


def test_fp32_round_trip_is_exact(values):
    stored = storage.encode(values, "fp32")
    assert stored.bits.dtype == np.uint32
    np.testing.assert_array_equal(stored.decode(), values)
    assert stored.bits[0, 0, 1] == values[0, 0, 1:2].view(np.uint32)[0]


def test_fp16_matches_torch_half(values):
    stored = storage.encode(values, "fp16")
    reference = torch.from_numpy(values).half().float().numpy()
    np.testing.assert_array_equal(stored.decode(), reference)
    assert np.isinf(stored.decode()[2, 2, 2])
    assert stored.bits.dtype == np.uint16


def test_bf16_matches_torch_bfloat16(values):
    stored = storage.encode(values, "bf16")
    reference = torch.from_numpy(values).bfloat16().float().numpy()
    np.testing.assert_array_equal(stored.decode(), reference)
    ties = np.array([1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8], dtype=np.float32)  # exact ties
    np.testing.assert_array_equal(
        storage.encode(ties, "bf16").decode(), torch.from_numpy(ties).bfloat16().float().numpy()
    )


def test_bf16_keeps_nan():
    stored = storage.encode(np.array([np.nan, -np.inf], dtype=np.float32), "bf16")
    decoded = stored.decode()
    assert np.isnan(decoded[0]) and decoded[1] == -np.inf


def test_int8_per_channel_matches_reference(values):
    values = values.copy()
    values[2, 2, 2] = 1.5
    stored = storage.encode(values, "int8", channel_axis=0)
    amax = np.abs(values).reshape(6, -1).max(axis=1)
    scales = amax / 127.0
    q = np.clip(np.round(values / scales[:, None, None]), -127, 127)
    reference = (q * scales[:, None, None]).astype(np.float32)
    np.testing.assert_allclose(stored.decode(), reference, rtol=1e-6, atol=0)
    assert stored.scales.shape == (6, 1, 1)
    # every channel's largest magnitude is representable exactly as +-127 steps
    assert np.all(np.abs(stored.bits.view(np.int8)).reshape(6, -1).max(axis=1) == 127)


def test_int8_zero_channel_and_per_tensor():
    values = np.zeros((3, 4), dtype=np.float32)
    values[1] = [0.5, -0.25, 0.0, 1.0]
    per_channel = storage.encode(values, "int8", channel_axis=0)
    np.testing.assert_array_equal(per_channel.decode()[0], 0.0)
    per_tensor = storage.encode(values, "int8", channel_axis=None)
    assert per_tensor.scales.shape == (1, 1)
    np.testing.assert_allclose(per_tensor.decode()[1], [0.503937, -0.251968, 0.0, 1.0], rtol=1e-5)


def test_unknown_format_is_one_line():
    with pytest.raises(storage.StorageError, match="unknown storage dtype 'fp8'"):
        storage.encode(np.ones(2, np.float32), "fp8")
