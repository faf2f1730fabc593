"""Kernel-level threads: coarse splits over independent samples, never nested parallelism.

BLAS always runs one thread inside the executor (:func:`compute_threads` limits it): OpenBLAS
threads spin-wait on every small sgemm, and the row-exact kernels issue many small ones (one
per sample or per 8-row block), which collapses when another process holds a core. Instead, a
kernel whose work is large splits its independent items (samples of a stacked matmul, 8-row
blocks, conv samples, elementwise chunks) into ``threads()`` contiguous parts run on a shared
thread pool (numpy, BLAS and the Numba kernels release the GIL). The parts compute exactly what
one thread would, item for item, so results do not depend on the thread count.

The thread count is 1 unless a caller raises it with :func:`compute_threads` (the executor's
golden inference); campaign workers keep 1 (``faults.common.threads``), so threads × processes
never exceed the cores.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator

_state = threading.local()
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_CONTROLLER = None
MIN_WORK = 2_000_000  # flops (or elements × 10) below which a kernel never splits


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


_DEFAULT: list[int | None] = [None]


def set_default_threads(n: int | None) -> None:
    """Threads :func:`compute_threads` uses when not told (None = the available cores); a
    campaign worker sets 1 so that threads × worker processes never exceed the cores."""
    if n is not None and int(n) < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    _DEFAULT[0] = None if n is None else int(n)


def default_threads() -> int:
    return _DEFAULT[0] or available_cores()


def threads() -> int:
    """Threads a kernel may use now (1 outside :func:`compute_threads`)."""
    return getattr(_state, "threads", 1)


def _blas_controller():
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


@contextmanager
def compute_threads(n: int | None = None) -> Iterator[int]:
    """Inside: kernels may split work over ``n`` threads (default: :func:`default_threads`),
    BLAS runs one thread per call. Yields the thread count."""
    n = default_threads() if n is None else int(n)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    previous = threads()
    _state.threads = n
    try:
        with _blas_controller().limit(limits=1, user_api="blas"):
            yield n
    finally:
        _state.threads = previous


def split(fn: Callable[[int, int], None], items: int, work: float) -> None:
    """Run ``fn(lo, hi)`` over ``range(items)`` in contiguous parts, one per thread when the
    total ``work`` is large enough (else one call). ``fn`` writes its own part of the result."""
    n = getattr(_state, "threads", 1)
    if n > items:
        n = items
    if n <= 1 or work < MIN_WORK * n:
        fn(0, items)
        return
    pool = _pool(n)
    bounds = [items * k // n for k in range(n + 1)]
    futures = [pool.submit(fn, bounds[k], bounds[k + 1]) for k in range(1, n)]
    fn(bounds[0], bounds[1])
    for future in futures:
        future.result()


def _pool(n: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE < n - 1:
        _POOL = ThreadPoolExecutor(max_workers=max(1, n - 1), thread_name_prefix="accelsim-kernel")
        _POOL_SIZE = n - 1
    return _POOL
