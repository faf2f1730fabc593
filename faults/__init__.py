"""Fault models, injection, campaigns, PVF/AVF/FIT statistics, reports and the CLI.

Imports accelsim; only ``faults.app`` (the command-line layer) also imports frontend.
"""
