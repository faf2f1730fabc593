"""Chunks of trials run in this process, on local worker processes or on Ray: the machinery that
PVF campaigns and AVF direct trials share (and any study whose trials come in fixed chunks).

A study hands over two things:

* an **evaluator factory** — a picklable callable whose call builds the worker-side evaluator
  (the program, inputs and golden caches it needs), optionally with a ``portable()`` method
  returning an equivalent factory that crosses process boundaries cheaply (e.g. a
  :class:`~accelsim.ir.Program` turned into :func:`program_state`: its MappingProxy fields are
  not picklable);
* a stream of **chunks** — picklable values (lists of trial indices, ``(structure, trials,
  ...)`` tuples); the evaluator's ``run_chunk(chunk)`` returns the chunk's result (a list of
  rows).

:class:`ChunkExecutor` runs the chunks and hands each result to a callback in the calling
process (which writes it to the study's store, one transaction per chunk). The partition into
chunks is the study's, never the executor's, so results do not depend on where a chunk ran:

* one worker (or a stream of a single chunk): in this process, one BLAS thread;
* N workers: a ``fork`` multiprocessing pool (``spawn`` where fork does not exist); the
  factory is inherited by the forked workers (no copy), each builds its evaluator once, with
  one BLAS thread (:mod:`faults.common.threads`), and at most ``2N + 2`` chunks are queued;
* Ray: ``ray.remote`` tasks (one CPU each) over the same chunks; the portable factory travels
  once through the object store and each Ray worker keeps the evaluator of the last ``key``.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import multiprocessing
import os
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from accelsim.errors import UserError
from accelsim.ir import Instruction, Parameter, Program, TensorSpec

from faults.common.threads import limit_blas_threads, single_blas_thread

BACKENDS = ("local", "ray")


class ExecutorError(UserError, ValueError):
    """Bad executor settings (one line)."""


# ---------------------------------------------------------------------------- program transport
def program_state(program: Program) -> dict[str, Any]:
    """Plain, picklable form of a Program (MappingProxy fields are not picklable)."""
    return {
        "inputs": [dataclasses.astuple(s) for s in program.inputs],
        "outputs": [dataclasses.astuple(s) for s in program.outputs],
        "parameters": [dataclasses.astuple(p) for p in program.parameters.values()],
        "parameter_values": {k: np.asarray(v) for k, v in program.parameter_values.items()},
        "constants": {k: np.asarray(v) for k, v in program.constants.items()},
        "instructions": [(i.op, i.name, i.inputs, i.outputs, dict(i.attrs)) for i in program.instructions],
        "name": program.name,
    }


def program_from_state(state: Mapping[str, Any]) -> Program:
    """The Program of :func:`program_state` (equal fingerprint, same results)."""
    params = [Parameter(*t) for t in state["parameters"]]
    return Program(
        inputs=tuple(TensorSpec(*t) for t in state["inputs"]),
        outputs=tuple(TensorSpec(*t) for t in state["outputs"]),
        parameters={p.name: p for p in params},
        parameter_values={k: np.array(v) for k, v in state["parameter_values"].items()},
        constants={k: np.array(v) for k, v in state["constants"].items()},
        instructions=tuple(Instruction(op, name, ins, outs, attrs) for op, name, ins, outs, attrs in state["instructions"]),
        name=state["name"],
    )


def as_program(program: Program | Mapping[str, Any]) -> Program:
    """A Program, from itself or from its :func:`program_state`."""
    return program if isinstance(program, Program) else program_from_state(program)


def portable(factory: Callable[[], Any]) -> Callable[[], Any]:
    """The factory as it should cross a process boundary (its ``portable()`` if it has one)."""
    make = getattr(factory, "portable", None)
    return make() if callable(make) else factory


# ---------------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


def _init_worker(factory: Any) -> None:
    limit_blas_threads()
    if factory is not None:
        _WORKER["factory"] = factory
    _WORKER.pop("evaluator", None)


def _run_chunk(chunk: Any) -> Any:
    ev = _WORKER.get("evaluator")
    if ev is None:
        ev = _WORKER["evaluator"] = _WORKER["factory"]()
    return ev.run_chunk(chunk)


_RAY_CACHE: dict[str, Any] = {}


def _ray_chunk(key: str, factory: Any, chunk: Any) -> Any:
    ev = _RAY_CACHE.get(key)
    if ev is None:
        limit_blas_threads()
        _RAY_CACHE.clear()
        ev = _RAY_CACHE[key] = factory()
    return ev.run_chunk(chunk)


# ---------------------------------------------------------------------------- executor
class ChunkExecutor:
    """Runs chunks with the evaluators of ``factory`` (module docstring).

    Args:
        factory: picklable callable building the evaluator (``run_chunk(chunk) -> result``).
        workers: local worker processes (1 = this process); with Ray, the CPUs of a local
            cluster it starts (an existing cluster, ``RAY_ADDRESS``, keeps its own).
        backend: "local" or "ray" (the optional extra ``accelsim[ray]``).
        key: names the study on Ray workers (a worker rebuilds its evaluator when it changes);
            e.g. the store's identity hash.
        local: an evaluator already built in this process, used instead of calling the
            factory when chunks run here.
    """

    def __init__(self, factory: Callable[[], Any], workers: int = 1, backend: str = "local",
                 key: str = "study", local: Any = None) -> None:
        if backend not in BACKENDS:
            raise ExecutorError(f"unknown backend {backend!r}; choose local or ray")
        if int(workers) < 1:
            raise ExecutorError(f"workers must be >= 1, got {workers}")
        self.factory, self.workers, self.backend, self.key = factory, int(workers), backend, key
        self.local = local
        self.pool = None
        self.ray_state = None

    def __enter__(self) -> "ChunkExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker pool (if any); the executor can run again afterwards."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def run(self, chunks: Iterable[Any], record: Callable[[Any], None]) -> None:
        """Run every chunk; ``record(result)`` in this process as results arrive (in chunk
        order locally, in completion order on Ray)."""
        chunks = iter(chunks)
        if self.backend == "ray":
            self._run_ray(chunks, record)
            return
        head = list(itertools.islice(chunks, 2))
        if not head:
            return
        stream = itertools.chain(head, chunks)
        if self.workers == 1 or len(head) == 1:
            with single_blas_thread():
                if self.local is None:
                    self.local = self.factory()
                for chunk in stream:
                    record(self.local.run_chunk(chunk))
            return
        if self.pool is None:
            self.pool = self._make_pool()
        inflight: collections.deque = collections.deque()
        for chunk in stream:
            inflight.append(self.pool.apply_async(_run_chunk, (chunk,)))
            if len(inflight) >= 2 * self.workers + 2:
                record(inflight.popleft().get())
        while inflight:
            record(inflight.popleft().get())

    def _make_pool(self):
        if "fork" in multiprocessing.get_all_start_methods():
            _WORKER["factory"] = self.factory  # inherited by the forked workers (no copy)
            return multiprocessing.get_context("fork").Pool(self.workers, initializer=_init_worker, initargs=(None,))
        ctx = multiprocessing.get_context("spawn")  # pragma: no cover - non-Linux
        return ctx.Pool(self.workers, initializer=_init_worker, initargs=(portable(self.factory),))

    def _run_ray(self, chunks: Iterator[Any], record: Callable[[Any], None]) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ExecutorError("--backend ray needs the optional extra: pip install 'accelsim[ray]'") from exc
        if not ray.is_initialized():
            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            env = {"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
            address = os.environ.get("RAY_ADDRESS")
            kwargs: dict[str, Any] = {"include_dashboard": False, "runtime_env": {"env_vars": env}}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=self.workers, **kwargs)
        if self.ray_state is None:
            self.ray_state = (ray.put(portable(self.factory)), ray.remote(num_cpus=1)(_ray_chunk))
        ref, remote = self.ray_state
        limit = max(2, 2 * int(ray.available_resources().get("CPU", self.workers) or self.workers))
        inflight: list = []
        for chunk in itertools.chain(chunks, [None]):
            if chunk is not None:
                inflight.append(remote.remote(self.key, ref, chunk))
                if len(inflight) < limit:
                    continue
            while inflight and (chunk is None or len(inflight) >= limit):
                ready, inflight = ray.wait(inflight, num_returns=1)
                for obj in ready:
                    record(ray.get(obj))
