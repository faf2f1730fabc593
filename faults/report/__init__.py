"""Reports (a leaf: nothing imports it but the API and the CLI): markdown, CSV and PNG of PVF
campaigns (:mod:`~faults.report.pvf_report`), of AVF studies and sweeps
(:mod:`~faults.report.avf_report`) and of protection studies, sweeps and placement searches
(:mod:`~faults.report.protect_report`).
"""
