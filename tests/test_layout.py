"""The package layout: imports point one way only, and no module reaches itself.

Parses every module of accelsim/, frontend/, faults/ and cli/ (imports inside functions and
``TYPE_CHECKING`` blocks included) and checks:

* accelsim imports only accelsim; frontend only accelsim and frontend;
* inside faults, a subpackage imports only its own layer or a lower one:
  common < inject < pvf < avf < protect < {report, reference} < api, with report and
  reference (leaves) not importing each other; only ``faults.api`` and the reference oracles
  may import frontend;
* cli imports faults only through ``faults.api`` (and never frontend);
* the module import graph has no cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("accelsim", "frontend", "faults", "cli")
FAULT_LAYERS = {"common": 0, "inject": 1, "pvf": 2, "avf": 3, "protect": 4, "report": 5, "reference": 5,
                "api": 6}


def _modules() -> dict[str, Path]:
    mods = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = path
    return mods


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of ours that ``name`` imports (the most specific known module of each import)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # ``from pkg import mod`` imports pkg.mod; ``from mod import name`` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


GRAPH = None


def graph() -> dict[str, set[str]]:
    global GRAPH
    if GRAPH is None:
        mods = _modules()
        GRAPH = {name: _imports(name, path, set(mods)) for name, path in mods.items()}
    return GRAPH


def _layer(module: str) -> tuple[str, str]:
    parts = module.split(".")
    return parts[0], parts[1] if len(parts) > 1 else ""


def test_the_parser_sees_the_packages():
    g = graph()
    assert "faults.api" in g and "cli.main" in g and "accelsim.schedule.core" in g
    assert "faults.pvf.campaign" in g["faults.api.studies"]  # an import the checks below rely on seeing
    assert "faults.api.studies" in g["faults.api"]


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down(package):
    bad = []
    for module, targets in graph().items():
        top, sub = _layer(module)
        if top != package:
            continue
        for target in targets:
            t_top, t_sub = _layer(target)
            if top == "accelsim" and t_top != "accelsim":
                bad.append((module, target))
            elif top == "frontend" and t_top not in ("accelsim", "frontend"):
                bad.append((module, target))
            elif top == "cli" and (t_top == "frontend" or (t_top == "faults" and target != "faults.api")):
                bad.append((module, target))
            elif top == "faults":
                if t_top == "cli" or (t_top == "frontend" and sub not in ("api", "reference")):
                    bad.append((module, target))
                elif t_top == "faults" and sub and t_sub:
                    mine, theirs = FAULT_LAYERS.get(sub), FAULT_LAYERS.get(t_sub)
                    if mine is None or theirs is None or theirs > mine or (theirs == mine and sub != t_sub):
                        bad.append((module, target))
    assert not bad, "upward or sideways imports: " + ", ".join(f"{a} -> {b}" for a, b in bad)


def test_every_faults_module_sits_in_a_known_layer():
    unknown = [m for m in graph() if m.startswith("faults.") and _layer(m)[1] not in FAULT_LAYERS]
    assert not unknown, unknown


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_cycle_detector_finds_a_planted_cycle(monkeypatch):
    """The check above can fail: a graph with a cycle is reported."""
    global GRAPH
    planted = {k: set(v) for k, v in graph().items()}
    planted["faults.common.stats"].add("faults.api")
    monkeypatch.setattr("test_layout.GRAPH", planted)
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycles()
    with pytest.raises(AssertionError, match="faults.common.stats -> faults.api"):
        test_imports_point_down("faults")
