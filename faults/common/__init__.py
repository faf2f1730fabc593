"""What every later stage shares: fault models on stored bits, outcomes and criteria,
statistics, the SQLite store base, atomic file writes, fingerprints and thread limits.

Imports only accelsim (never another faults subpackage).
"""
