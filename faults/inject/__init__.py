"""One injection engine: a fault's effect on the network output, computed exactly from the
golden run.

* :class:`FastInjector` — parameter faults (a corrupted stored parameter for the whole
  inference): the first reader recomputed on the fault's rows, dirty-set propagation on those
  rows, stacking of faults that start at the same instruction; bit-identical to a full re-run
  (:mod:`faults.inject.engine`);
* :class:`PartialInjector` — a flipped element seen by only some of its reads (hardware sites
  resolved through the residency table), on the same golden run (:mod:`faults.inject.partial`).

Batch structure, golden run, start instruction and propagation are private modules of this
package. Imports accelsim and :mod:`faults.common` only.
"""
from faults.inject.engine import FastInjector, FastPathError, Fault, FaultResult
from faults.inject.partial import (ElementHit, HitFault, PartialError, PartialFault, PartialInjector,
                                   PartialResult, Use)

__all__ = ["FastInjector", "FastPathError", "Fault", "FaultResult", "PartialError", "PartialFault",
           "PartialInjector", "PartialResult", "Use", "ElementHit", "HitFault"]
