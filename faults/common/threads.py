"""Thread limits that results depend on.

Evaluators run with one BLAS thread, in-process or in worker processes alike, so that floating-
point summation order — and therefore every stored number — does not depend on the worker
count. threadpoolctl is a required dependency; a failure to set the limit is an error, never
silently ignored.
"""
from __future__ import annotations

from threadpoolctl import threadpool_limits


def limit_blas_threads() -> None:
    """One BLAS thread for the rest of this process (worker initialiser)."""
    threadpool_limits(1)


class single_blas_thread:
    """Context manager: BLAS limited to one thread inside, the previous limits restored after."""

    def __enter__(self) -> "single_blas_thread":
        self._limits = threadpool_limits(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self._limits.restore_original_limits()
