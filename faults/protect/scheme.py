"""Protection schemes as data: which code guards which structure, how, and what happens on a
detected error.

A :class:`Scheme` is a code (:func:`faults.protect.codes.parse_scheme_code`), the column
interleave degree of the structure's physical rows, the policy on a detected-uncorrectable
error (``halt``: the inference stops, a DUE; ``zero``: the word's values are read as zero and
the inference goes on — weight masking — and its outcome is run and classified), and an
optional decode latency per read in cycles. A :class:`Protection` maps structures — and the
protected bank of the weight SRAM (``weight_sram.bank``, see ``accelsim.schedule.placement``) —
to schemes, and names the hardware upset model (``faults.protect.upsets``).

CLI spec (``--scheme``, repeatable): ``STRUCTURE=CODE[,interleave=D][,policy=halt|zero]
[,latency=C]`` where CODE is a code spec with its own options (``secded:64``,
``secded:64,bits=31-23,elem=32``, ``symbol:16+3``, ``none``), e.g.
``weight_sram=secded:64,interleave=4``, ``hbm=symbol:16+3``, ``pe=parity:32``,
``weight_sram.bank=secded:64``.

TOML (``--protection FILE.toml``)::

    upset = "mcu:1=0.7,2=0.2,3=0.1"
    [weight_sram]
    code = "secded:64"
    interleave = 4
    policy = "halt"
    latency_cycles = 1
    [weight_sram.bank]
    code = "dected:64"

Unknown keys, values of the wrong type, unknown structures: one-line :class:`SchemeError`.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from accelsim.errors import UserError

from faults.protect.codes import BinaryLinearCode, CodeError, NoCode, parse_scheme_code
from faults.protect.upsets import SINGLE, UpsetModel, parse_upset_model

STRUCTURES = ("hbm", "weight_sram", "embedding_sram", "pe")
AREAS = STRUCTURES + ("weight_sram.bank",)
POLICIES = ("halt", "zero")
SCHEME_KEYS = ("interleave", "policy", "latency")


class SchemeError(UserError, ValueError):
    """A malformed protection scheme or file (one line)."""


@dataclass(frozen=True)
class Scheme:
    """How one structure (or area) is protected (module docstring)."""

    code: BinaryLinearCode = field(default_factory=lambda: NoCode(64))
    interleave: int = 1
    policy: str = "halt"
    latency_cycles: int = 0

    def __post_init__(self) -> None:
        if self.interleave < 1:
            raise SchemeError(f"interleave must be >= 1, got {self.interleave}")
        if self.policy not in POLICIES:
            raise SchemeError(f"policy {self.policy!r}: choose {' or '.join(POLICIES)}")
        if self.latency_cycles < 0:
            raise SchemeError(f"latency must be >= 0 cycles, got {self.latency_cycles}")

    @property
    def name(self) -> str:
        """Canonical text (parseable back)."""
        extra = [f"interleave={self.interleave}"] if self.interleave != 1 else []
        extra += [f"policy={self.policy}"] if self.policy != "halt" else []
        extra += [f"latency={self.latency_cycles}"] if self.latency_cycles else []
        return ",".join([self.code.name] + extra)

    @property
    def kind(self) -> str:
        """``none``, ``parity``, ``secded``, ``dected`` or ``symbol`` (selective: the inner code's)."""
        return self.code.name.split(":", 1)[0].split(",", 1)[0]

    @property
    def overhead(self) -> float:
        """Check bits per data bit."""
        return self.code.check_bits / self.code.data_bits


NONE = Scheme()


def parse_scheme(text: str) -> tuple[str, Scheme]:
    """``"weight_sram=secded:64,interleave=4"`` -> ("weight_sram", Scheme(...))."""
    area, sep, rest = text.partition("=")
    area = area.strip()
    if not sep or area not in AREAS:
        raise SchemeError(f"--scheme {text!r}: use STRUCTURE=CODE[,interleave=D][,policy=halt|zero]"
                          f"[,latency=C] with STRUCTURE in {', '.join(AREAS)}")
    code_parts, options = [], {}
    for item in (p.strip() for p in rest.split(",")):
        key, eq, value = item.partition("=")
        if eq and key.strip() in SCHEME_KEYS:
            if key.strip() in options:
                raise SchemeError(f"--scheme {text!r}: {key.strip()} given twice")
            options[key.strip()] = value.strip()
        else:
            code_parts.append(item)
    return area, _scheme(",".join(code_parts), options, f"--scheme {text!r}")


def _scheme(code_text: str, options: Mapping[str, Any], where: str) -> Scheme:
    try:
        code = parse_scheme_code(code_text)
    except CodeError as exc:
        raise SchemeError(f"{where}: {exc}") from None
    try:
        interleave = int(options.get("interleave", 1))
        latency = int(options.get("latency", options.get("latency_cycles", 0)))
    except (TypeError, ValueError):
        raise SchemeError(f"{where}: interleave and latency must be integers") from None
    return Scheme(code, interleave, str(options.get("policy", "halt")), latency)


@dataclass(frozen=True)
class Protection:
    """Schemes per area (unlisted areas: no protection) and the upset model."""

    schemes: tuple[tuple[str, Scheme], ...] = ()
    upset: UpsetModel = SINGLE

    def __post_init__(self) -> None:
        areas = [a for a, _ in self.schemes]
        bad = [a for a in areas if a not in AREAS]
        if bad or len(set(areas)) != len(areas):
            raise SchemeError(f"protection areas {areas}: each of {', '.join(AREAS)} at most once")

    def scheme(self, area: str) -> Scheme:
        return dict(self.schemes).get(area, NONE)

    @property
    def name(self) -> str:
        listed = " ".join(f"{a}={s.name}" for a, s in self.schemes) or "none"
        return f"{listed} upset={self.upset.name}"

    def with_scheme(self, area: str, scheme: Scheme) -> "Protection":
        rest = tuple((a, s) for a, s in self.schemes if a != area)
        return Protection(rest + ((area, scheme),), self.upset)


def parse_protection(specs: list[str], upset: str | None = None) -> Protection:
    """Protection from repeated ``--scheme`` specs and an ``--upset`` spec."""
    schemes = tuple(parse_scheme(s) for s in specs)
    model = SINGLE if not upset else parse_upset_model(upset)
    return Protection(schemes, model)


def load_protection(path: str | Path) -> Protection:
    """Protection from a TOML file (module docstring)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SchemeError(f"{path}: not a readable protection TOML ({type(exc).__name__}: {exc})") from None
    upset = data.pop("upset", None)
    if upset is not None and not isinstance(upset, str):
        raise SchemeError(f"{path}: 'upset' must be a string")
    schemes = []
    for structure, table in data.items():
        if structure not in STRUCTURES or not isinstance(table, dict):
            raise SchemeError(f"{path}: unknown section [{structure}]; use {', '.join(STRUCTURES)}")
        bank = table.pop("bank", None)
        for area, entry in ((structure, None if bank is not None and not table else table),
                            (f"{structure}.bank", bank)):
            if entry is None:
                continue
            if area not in AREAS or not isinstance(entry, dict):
                raise SchemeError(f"{path}: [{area}] is not a protection area")
            unknown = sorted(set(entry) - {"code", "interleave", "policy", "latency_cycles"})
            if unknown or "code" not in entry:
                raise SchemeError(f"{path}: [{area}] needs 'code' and takes interleave, policy, latency_cycles"
                                  + (f"; unknown key {unknown[0]!r}" if unknown else ""))
            schemes.append((area, _scheme(str(entry["code"]), entry, f"{path} [{area}]")))
    return Protection(tuple(schemes), SINGLE if upset is None else parse_upset_model(upset))


def decode_cycles_of(protection: Protection) -> dict[str, int]:
    """Decode latency per read by memory structure for ``accelsim.schedule.simulate``: the
    largest of its areas' (a bank's reads are not told apart); PE registers get none."""
    cycles: dict[str, int] = {}
    for area, scheme in protection.schemes:
        structure = area.split(".", 1)[0]
        if structure != "pe" and scheme.latency_cycles:
            cycles[structure] = max(cycles.get(structure, 0), scheme.latency_cycles)
    return cycles
