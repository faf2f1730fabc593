"""Row exactness of the kernels: a row's fp32 bits do not depend on the other rows, their count
or the thread count (what makes fault injection on a fault's own rows exact)."""
from __future__ import annotations

import numpy as np
import pytest

import pvf_toys
from accelsim import executor
from accelsim.ir import Instruction
from accelsim.kernels import KERNELS, parallel
from accelsim.kernels.elementwise import gelu, gelu_reference
from accelsim.kernels.linear import ROW_BLOCK, gemm_rows, gemm_rows_reference


def _bits(a):
    a = np.asarray(a)
    return a.view(f"u{a.itemsize}")


SHAPES = [(384, 1536), (400, 120), (13, 512), (84, 10), (768, 768), (1, 7)]


@pytest.mark.parametrize("k,n", SHAPES)
def test_gemm_rows_is_row_exact_and_equals_its_twin(k, n):
    rng = np.random.default_rng(k * 7 + n)
    a = rng.standard_normal((203, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    full = gemm_rows(a, b)
    assert np.array_equal(_bits(full), _bits(gemm_rows_reference(a, b)))
    for rows in (np.array([5]), np.array([202, 0, 17]), np.arange(0, 203, 3), np.array([9, 9])):
        assert np.array_equal(_bits(gemm_rows(a[rows], b)), _bits(full[rows])), rows
    # a transposed weight view (Gemm transB) gives the same per-row bits as its row subsets
    bt = np.ascontiguousarray(b.T)
    assert np.array_equal(_bits(gemm_rows(a[[3, 4]], bt.T)), _bits(gemm_rows(a, bt.T)[[3, 4]]))


def test_a_plain_product_is_not_row_exact():
    """Why the blocks: BLAS gives a row other bits when it is multiplied with another row count
    (here alone, which takes the matrix-vector path), so a fault's rows could not be recomputed
    exactly; the blocked product gives the same bits either way."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 384)).astype(np.float32)
    b = rng.standard_normal((384, 384)).astype(np.float32)
    full = a @ b
    assert any(not np.array_equal(_bits(full[[r]]), _bits(a[[r]] @ b)) for r in range(0, 256, 16))
    blocked = gemm_rows(a, b)
    assert all(np.array_equal(_bits(blocked[[r]]), _bits(gemm_rows(a[[r]], b))) for r in range(0, 256, 16))
    assert ROW_BLOCK == 8


def test_gemm_rows_validates():
    with pytest.raises(ValueError, match="do not multiply"):
        gemm_rows(np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="fp32"):
        gemm_rows(np.zeros((2, 3)), np.zeros((3, 5)))


def test_stacked_matmul_is_exact_per_sample():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((12, 64, 96)).astype(np.float32)
    w = rng.standard_normal((96, 200)).astype(np.float32)
    inst = Instruction("matmul", "m", ("a", "w"), ("y",))
    full = KERNELS["matmul"](inst, [a, w])[0]
    rows = np.array([11, 0, 5])
    assert np.array_equal(_bits(KERNELS["matmul"](inst, [a[rows], w])[0]), _bits(full[rows]))
    kt = rng.standard_normal((12, 4, 64, 32)).astype(np.float32).transpose(0, 1, 3, 2)  # strided keys
    q = rng.standard_normal((12, 4, 64, 32)).astype(np.float32)
    s_full = KERNELS["matmul"](inst, [q, kt])[0]
    assert np.array_equal(_bits(KERNELS["matmul"](inst, [q[rows], kt[rows]])[0]), _bits(s_full[rows]))


@pytest.mark.parametrize("name", ["attention", "cnn", "mlp"])
def test_thread_count_does_not_change_results(name, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_WORK", 1)  # split even the tiny toys
    program = getattr(pvf_toys, name)()
    inputs = pvf_toys.inputs_for(program, batch=37)
    one = executor.run(program, inputs, threads=1, keep_intermediates=True).cache
    two = executor.run(program, inputs, threads=3, keep_intermediates=True).cache
    for key, value in one.items():
        if np.asarray(value).dtype.kind == "f":
            assert np.array_equal(_bits(value), _bits(two[key])), key


def test_compute_threads_limits_and_restores():
    assert parallel.threads() == 1
    with parallel.compute_threads(3) as n:
        assert n == 3 and parallel.threads() == 3
    assert parallel.threads() == 1
    with pytest.raises(ValueError):
        with parallel.compute_threads(0):
            pass


def test_fused_gelu_equals_its_float64_twin():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(100_003) * 4).astype(np.float32)
    x[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40]
    assert np.array_equal(_bits(gelu(x)), _bits(gelu_reference(x, "none")))
    x2 = x.reshape(-1, 1)[:100_000].reshape(100, 1000)
    assert gelu(x2).shape == (100, 1000)
    with pytest.raises(ValueError, match="approximation"):
        gelu(x, "cubic")
