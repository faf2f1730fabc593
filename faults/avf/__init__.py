"""AVF per memory structure: hardware fault sites resolved through the residency table, direct
AVF by injection, the joined estimate (residency × PVF), FIT, studies and sweeps.

Data path: :mod:`~faults.avf.sites` (site → the reads it reaches) → :mod:`~faults.avf.context`
(golden run, schedule, resolver, partial injector) → :mod:`~faults.avf.direct` (sample, resolve,
run) and :mod:`~faults.avf.joined` (ACE × PVF from :mod:`faults.pvf`) → :mod:`~faults.avf.fit`
→ :mod:`~faults.avf.study` (one hardware config, :mod:`~faults.avf.store`) →
:mod:`~faults.avf.sweep` (one config key across values).
"""
