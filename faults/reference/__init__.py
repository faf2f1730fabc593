"""Naive oracles, independent of the fast paths, for tests and benchmarks (a leaf: the
runtime never imports it): onnxruntime and torch-eager re-runs with a corrupted weight
(:mod:`~faults.reference.onnx_naive`), the trial-by-trial exactness check
(:mod:`~faults.reference.exactness`), and a tile-by-tile replay of hardware sites
(:mod:`~faults.reference.tile_replay`).
"""
