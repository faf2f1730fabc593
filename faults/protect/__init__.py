"""Protection of stored bits: error-correcting codes, hardware upset models, interleaving.

The foundation for protection placement (parity, ECC, selective protection):

* :mod:`faults.protect.codes` — codes as data with their exact decoder behaviour on an error
  pattern (``none``, ``parity``, Hsiao SECDED, BCH DECTED, Reed–Solomon symbol ECC and
  selective protection of chosen data bits) and :func:`~faults.protect.codes.parse_scheme_code`
  for command-line specs such as ``secded:64`` or ``secded:64,bits=31-23``;
* :mod:`faults.protect.upsets` — single-cell and multi-cell upsets (clusters of adjacent cells
  of a physical row) and column interleaving of codewords in a physical row.

Together: an upset at a physical cell of a structure becomes a cluster
(:meth:`~faults.protect.upsets.UpsetModel.draw_sizes`,
:meth:`~faults.protect.upsets.ColumnInterleaving.place_clusters`), the cluster becomes error
patterns of the codewords it touches
(:meth:`~faults.protect.upsets.ColumnInterleaving.cluster_errors`), and the code says what its
decoder does with each pattern on read (:meth:`~faults.protect.linear.BinaryLinearCode.decode_many`).
:func:`~faults.protect.upsets.draw_cluster_errors` does the first two steps at once.

Helper modules: :mod:`~faults.protect.gf` (GF(2^m) and GF(2) arithmetic),
:mod:`~faults.protect.linear` (outcomes, decode results, the syndrome-decoding base class),
:mod:`~faults.protect.bch`, :mod:`~faults.protect.symbol`, :mod:`~faults.protect.selective`.
"""
