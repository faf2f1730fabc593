"""accelsim: a cycle-approximate AI accelerator (systolic array, SRAM buffers, HBM) with a
functional executor, parameter storage formats and a residency model.

Imports neither ``frontend`` nor ``faults``: they import it.
"""
__version__ = "0.1.0"
