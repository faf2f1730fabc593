"""PVF campaigns: which parameters (targets, strata), the plan, trial evaluation, execution on
local workers or Ray, the trial store, and the results.

Data path: :mod:`~faults.pvf.targets` → :mod:`~faults.pvf.plan` → :mod:`~faults.pvf.evaluator`
(uses :mod:`faults.inject`) → :mod:`~faults.pvf.runner` → :mod:`~faults.pvf.store` →
:mod:`~faults.pvf.results`; :func:`~faults.pvf.campaign.run_campaign` is the entry point.
"""
