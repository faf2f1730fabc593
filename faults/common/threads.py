"""Thread limits of campaign evaluators.

Evaluators run with one BLAS thread and one kernel thread (``accelsim.kernels.parallel``), in
process or in worker processes alike, so that N workers use N cores and never oversubscribe
them (BLAS threads × kernel threads × processes <= cores). (Results do not depend on thread
counts anyway: every kernel is row exact and computes each sample on its own.) The Numba
kernels are not parallel (no threading layer is used). threadpoolctl is a required
dependency; a failure to set the limit is an error, never silently ignored.
"""
from __future__ import annotations

from threadpoolctl import threadpool_limits

from accelsim.kernels import parallel


def limit_blas_threads() -> None:
    """One BLAS thread and one kernel thread for the rest of this process (worker initialiser)."""
    threadpool_limits(1)
    parallel.set_default_threads(1)


class single_blas_thread:
    """Context manager: BLAS limited to one thread inside, the previous limits restored after."""

    def __enter__(self) -> "single_blas_thread":
        self._limits = threadpool_limits(1)
        self._default = parallel._DEFAULT[0]
        parallel.set_default_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._limits.restore_original_limits()
        parallel.set_default_threads(self._default)
