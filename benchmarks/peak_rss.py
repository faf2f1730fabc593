"""Run a command and report the peak resident memory (VmHWM) of it and of each process it starts.

Usage::

    python -m benchmarks.peak_rss -- accelsim pvf ... --workers 2

Prints one line per process seen (pid, peak RSS in GiB, command) and the largest peak among the
children (the campaign's workers). Linux only (reads /proc every 0.2 s).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time


def _children(pid: int) -> list[int]:
    found = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            kids = [int(k) for k in fh.read().split()]
    except OSError:
        return found
    for kid in kids:
        found.append(kid)
        found += _children(kid)
    return found


def _hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    proc = subprocess.Popen(argv)
    peaks: dict[int, int] = {}
    names: dict[int, str] = {}
    while proc.poll() is None:
        for pid in [proc.pid] + _children(proc.pid):
            hwm = _hwm_kib(pid)
            if hwm is not None:
                peaks[pid] = max(peaks.get(pid, 0), hwm)
                if pid not in names:
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as fh:
                            names[pid] = fh.read().replace(b"\0", b" ").decode(errors="replace")[:80]
                    except OSError:
                        names[pid] = "?"
        time.sleep(0.2)
    for pid, kib in sorted(peaks.items()):
        print(f"peak_rss pid {pid}: {kib / 2**20:.2f} GiB  {names.get(pid, '')}", file=sys.stderr)
    kids = [kib for pid, kib in peaks.items() if pid != proc.pid]
    main_peak = peaks.get(proc.pid, 0)
    print(f"peak_rss main {main_peak / 2**20:.2f} GiB; largest worker "
          f"{(max(kids) if kids else 0) / 2**20:.2f} GiB; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
