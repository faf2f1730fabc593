"""Which parameters a campaign corrupts, and its strata (cells).

Every parameter carries labels derived from the IR:

* ``param``     its name (``top_mlp.2.weight``);
* ``layer``     its component label from the frontend (``top_mlp.2``, ``encoder.3.attention.query``);
* ``component`` that label with pure-number segments removed (``top_mlp``,
  ``encoder.attention.query``, ``embedding.table3``) — groups a layer kind across depth;
* ``group``     the first segment (``embedding``, ``bottom_mlp``, ``top_mlp``, ``encoder``);
* ``role``      ``weight`` / ``bias`` / ``embedding`` / ... / ``scale`` (the fp32 scales of a
  parameter stored as int8, addressed as the pseudo-parameter ``<name>#scale``)

A target (``--target``) is ``key=glob[,key=glob...]`` (all must hold); several targets are
alternatives. The default selects every parameter. Inside a cell, the parameter is drawn with
probability proportional to its bits (``weighting="bits"``, i.e. a uniformly random stored bit
of the cell) or uniformly (``"uniform"``).

Strata (``--by``): any of ``dtype``, ``group``, ``component``, ``layer``, ``param``, ``role``,
``bit``. A campaign runs its trials per cell (the product of the keys' values), so every
stratum gets its own sample size and interval.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Iterable, Sequence

from accelsim.errors import UserError
from accelsim.ir import Parameter, Program
from accelsim.storage import BITS_PER_ELEMENT

from faults.common.fault_models import FaultModel
from faults.common.scales import SCALE_ROLE, base_of, scale_count, scale_name

LABEL_KEYS = ("param", "layer", "component", "group", "role")
SCALED_FORMATS = ("int8",)  # storage formats whose scales are stored bits too
SCALE_BITS = 32
STRATA_KEYS = ("dtype",) + LABEL_KEYS + ("bit",)


class TargetError(UserError, ValueError):
    """No parameter matches, unknown key, ... (one line)."""


def labels(param: Parameter) -> dict[str, str]:
    """The label values of one parameter (see module docstring)."""
    layer = param.component or param.name
    parts = [p for p in layer.split(".") if not p.isdigit()]
    component = ".".join(parts) or layer
    return {
        "param": param.name,
        "layer": layer,
        "component": component,
        "group": layer.split(".")[0],
        "role": param.role,
    }


@dataclass(frozen=True)
class Target:
    """OR of AND-clauses ``(key, glob)``; empty means every parameter."""

    clauses: tuple[tuple[tuple[str, str], ...], ...] = ()

    def matches(self, param: Parameter) -> bool:
        if not self.clauses:
            return True
        lab = labels(param)
        return any(all(fnmatch.fnmatchcase(lab[key], pat) for key, pat in clause) for clause in self.clauses)

    def describe(self) -> str:
        if not self.clauses:
            return "all"
        return " | ".join(",".join(f"{k}={v}" for k, v in clause) for clause in self.clauses)


def parse_target(texts: str | Sequence[str] | None) -> Target:
    """Parse ``["component=top_mlp,role=weight", "group=embedding"]`` (or one string; ``all``)."""
    if texts is None:
        return Target()
    if isinstance(texts, str):
        texts = [texts]
    clauses: list[tuple[tuple[str, str], ...]] = []
    for text in texts:
        text = text.strip()
        if text in ("", "all", "*"):
            return Target()
        clause: list[tuple[str, str]] = []
        for item in text.split(","):
            key, sep, pattern = item.partition("=")
            key = key.strip().lower()
            if not sep:  # bare pattern: parameter name glob
                key, pattern = "param", item
            if key not in LABEL_KEYS:
                raise TargetError(f"unknown target key {key!r} in {text!r}; use {', '.join(LABEL_KEYS)}")
            clause.append((key, pattern.strip()))
        clauses.append(tuple(clause))
    return Target(tuple(clauses))


def select(program: Program, target: Target) -> list[Parameter]:
    """Parameters of ``program`` matched by ``target`` (program order); error if none."""
    chosen = [p for p in program.parameters.values() if target.matches(p) and p.size > 0]
    if not chosen:
        comps = sorted({labels(p)["component"] for p in program.parameters.values()})
        raise TargetError(
            f"target {target.describe()!r} matches no parameter; components are: {', '.join(comps)}"
        )
    return chosen


@dataclass(frozen=True)
class Cell:
    """One stratum: storage format, optional fixed bit, candidate parameters and weights."""

    index: int
    dtype: str
    keys: tuple[tuple[str, str], ...]  # stratum key -> value (dtype/labels/bit as text)
    params: tuple[str, ...]
    weights: tuple[float, ...]  # selection probabilities (sum to 1)
    bit: int | None
    bits_total: int  # stored bits in the cell's parameters

    def key(self, name: str) -> str:
        for k, v in self.keys:
            if k == name:
                return v
        return "*"

    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.keys) or "all"


def scale_parameters(program: Program) -> list[Parameter]:
    """The scales of every parameter as pseudo-parameters ``<name>#scale`` (role ``scale``, fp32
    elements, one per channel; see :mod:`faults.common.scales`) — stored bits in scaled formats."""
    return [Parameter(scale_name(p.name), (scale_count(p.shape, p.channel_axis),), p.component, SCALE_ROLE,
                      None, p.name) for p in program.parameters.values() if p.size > 0]


def parameter_spec(program: Program, name: str) -> Parameter:
    """The parameter ``name`` of ``program``, or the scale pseudo-parameter it names."""
    if name in program.parameters:
        return program.parameters[name]
    base = base_of(name)
    if base is None or base not in program.parameters:
        raise TargetError(f"unknown parameter {name!r}")
    p = program.parameters[base]
    return Parameter(name, (scale_count(p.shape, p.channel_axis),), p.component, SCALE_ROLE, None, base)


def stored_bits(param: Parameter, dtype: str) -> int:
    """Bits ``param`` occupies when the model is stored as ``dtype`` (scales: fp32)."""
    return param.size * (SCALE_BITS if param.role == SCALE_ROLE and base_of(param.name) else BITS_PER_ELEMENT[dtype])


def plan_cells(
    program: Program,
    target: Target,
    by: Iterable[str],
    dtypes: Sequence[str],
    model: FaultModel,
    weighting: str = "bits",
) -> list[Cell]:
    """Enumerate the campaign's cells in a fixed order (dtype, label groups, bit).

    In a scaled format (int8) the candidates also include the scales of the selected parameters
    (pseudo-parameters ``<name>#scale``, role ``scale``, 32-bit fp32 elements) when the target
    matches them; with ``bit`` strata they form their own cells over the 32 scale bit positions
    (key ``stored=scale``).
    """
    by = tuple(k.strip().lower() for k in by if k.strip())
    for key in by:
        if key not in STRATA_KEYS:
            raise TargetError(f"unknown stratum {key!r}; use {', '.join(STRATA_KEYS)}")
    if "bit" in by and not model.has_bit_position:
        raise TargetError(f"--by bit needs a fault model with a bit position, not {model.kind}")
    if weighting not in ("bits", "uniform"):
        raise TargetError(f"unknown weighting {weighting!r}; use bits or uniform")
    values = [p for p in program.parameters.values() if target.matches(p) and p.size > 0]
    scales = [p for p in scale_parameters(program) if target.matches(p)]
    if not values and not (scales and any(d in SCALED_FORMATS for d in dtypes)):
        select(program, target)  # the one-line error listing the components
    label_keys = [k for k in by if k in LABEL_KEYS]
    cells: list[Cell] = []
    for dtype in dtypes:
        members_all = values + (scales if dtype in SCALED_FORMATS else [])
        if not members_all:
            raise TargetError(f"target {target.describe()!r} matches only scales, which {dtype} does not store")
        groups: dict[tuple[str, ...], list[Parameter]] = {}
        for p in members_all:
            lab = labels(p)
            part = ("scale",) if "bit" in by and p.role == SCALE_ROLE else ()
            groups.setdefault(tuple(lab[k] for k in label_keys) + part, []).append(p)
        for group, members in groups.items():
            is_scale = group[len(label_keys):] == ("scale",)
            positions = model.bit_positions("fp32" if is_scale else dtype) if "bit" in by else (None,)
            sizes = [float(stored_bits(p, dtype)) for p in members]
            if weighting == "bits":
                total = sum(sizes)
                weights = tuple(s / total for s in sizes)
            else:
                weights = tuple(1.0 / len(members) for _ in members)
            for bit in positions:
                keys: list[tuple[str, str]] = []
                for key in by:
                    if key == "dtype":
                        keys.append(("dtype", dtype))
                    elif key == "bit":
                        keys.append(("bit", str(bit)))
                    else:
                        keys.append((key, group[label_keys.index(key)]))
                if is_scale:
                    keys.append(("stored", "scale"))
                if "dtype" not in by and len(dtypes) > 1:
                    keys.insert(0, ("dtype", dtype))
                cells.append(
                    Cell(
                        index=len(cells),
                        dtype=dtype,
                        keys=tuple(keys),
                        params=tuple(p.name for p in members),
                        weights=weights,
                        bit=bit,
                        bits_total=int(sum(sizes)),
                    )
                )
    return cells
