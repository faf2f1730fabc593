"""Checks of written reports against independently computed values: markdown tables parsed
back into numbers, PNG plots decoded, SQL counts straight from a result store."""
from __future__ import annotations

import math
import sqlite3
from pathlib import Path


def assert_png(path: str | Path, min_side: int = 100) -> None:
    """The file decodes as a PNG image (matplotlib reads it) of at least ``min_side`` pixels a
    side, and is not one flat colour."""
    import matplotlib.image as mpimg
    import numpy as np

    path = Path(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    image = mpimg.imread(str(path))
    assert image.ndim == 3 and min(image.shape[:2]) >= min_side, (path, image.shape)
    assert float(np.std(image[..., :3])) > 0, f"{path}: a blank image"


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Every pipe table of a markdown text, as lists of {header: cell} rows."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and set(lines[i + 1].replace("|", "").strip()) <= set("-: "):
            header = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(header, cells)))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def markdown_table(text: str, first_column: str) -> list[dict[str, str]]:
    """The first pipe table of ``text`` whose first column is ``first_column``."""
    for rows in markdown_tables(text):
        if rows and next(iter(rows[0])) == first_column:
            return rows
    raise AssertionError(f"no table with first column {first_column!r}")


def number(cell: str) -> float:
    """A printed number ("0.0123", "1.2e-05", "0", "–", "nan", "<1e-12") as a float."""
    cell = cell.strip()
    if cell in ("–", "—", "nan", ""):
        return math.nan
    if cell.startswith("<"):
        return 0.0
    return float(cell)


def interval(cell: str) -> tuple[str, str]:
    """The two printed bounds of an interval "[lo, hi]" (or of "value [lo, hi]": the bounds)."""
    lo, hi = cell.strip()[cell.index("["):].strip("[]").split(",")
    return lo.strip(), hi.strip()


def printed(cell: str, expected: float, sig: int | None = None) -> bool:
    """Whether the printed ``cell`` is ``expected`` rounded as printed: within half a unit of its
    last printed digit (``sig``: printed with that many significant digits and trailing zeros
    dropped, as ``{:.3g}``). "0" only for exactly 0; NaN only for "–"/"nan"."""
    cell = cell.strip()
    value = number(cell)
    if math.isnan(expected) or math.isnan(value):
        return math.isnan(expected) and math.isnan(value)
    if cell == "0" or value == 0:
        return expected == 0
    if cell.startswith("<"):
        return 0 <= expected < float(cell[1:])
    if sig is not None:
        unit = 10.0 ** (math.floor(math.log10(abs(value))) - sig + 1)
    else:
        mantissa, _, exponent = cell.lower().partition("e")
        decimals = len(mantissa.partition(".")[2])
        unit = 10.0 ** (int(exponent or 0) - decimals)
    return abs(value - expected) <= 0.5 * unit * (1 + 1e-9)


def query(path: str | Path, sql: str, *args) -> list[tuple]:
    """Rows of ``sql`` on the SQLite file ``path``, opened read-only."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()
