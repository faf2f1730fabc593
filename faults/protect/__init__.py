"""Protection of stored bits: codes, upsets, protection studies and the placement search.

Data flow (each module one step):

* :mod:`~faults.protect.codes` — codes as data with their exact decoder behaviour on an error
  pattern (``none``, ``parity``, Hsiao SECDED, BCH DECTED, Reed–Solomon symbol ECC, selective
  protection of chosen bit positions); helpers :mod:`~faults.protect.linear`,
  :mod:`~faults.protect.gf`, :mod:`~faults.protect.parity`, :mod:`~faults.protect.secded`,
  :mod:`~faults.protect.bch`, :mod:`~faults.protect.symbol`, :mod:`~faults.protect.selective`;
* :mod:`~faults.protect.upsets` — single-cell and multi-cell upsets, column interleaving;
* :mod:`~faults.protect.scheme` — a scheme per structure (code, interleave, halt/zero policy,
  decode latency) and the protection of a chip (CLI specs, TOML);
* :mod:`~faults.protect.geometry` — a structure's areas (the weight SRAM's protected bank apart),
  codewords, check bits and physical cells;
* :mod:`~faults.protect.evaluate` — one upset: strike, decode on read, classify (corrected,
  unread, true / false DUE, zeroed, silent), run what gets through;
* :mod:`~faults.protect.study` / :mod:`~faults.protect.store` — a study: FIT and overheads per
  structure, resumable; :mod:`~faults.protect.sweep` — one study per scheme of an area;
* :mod:`~faults.protect.predict` — the same upsets with the run replaced by the read-weighted
  join with per-bit PVF;
* :mod:`~faults.protect.candidates`, :mod:`~faults.protect.search`,
  :mod:`~faults.protect.confirm` — the placement search under a budget and its confirmation by
  injection.
"""
