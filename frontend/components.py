"""Stable parameter names and component labels derived from the graph.

A component label groups parameters the way a reliability study reports them
(``embedding.table3``, ``bottom_mlp.0``, ``top_mlp.2``, ``conv1``, ``layer2.0.conv1``,
``encoder.3.attention.query``, ``encoder.3.ffn.out``, ``classifier``). It comes from the
module path that torch's exporters put in initializer names (``layer1.0.conv1.weight``) or,
for auto-named initializers (``onnx::Conv_123``, ``val_12``), from the consuming node's name
(legacy: ``/layer1/layer1.0/conv1/Conv``; dynamo: ``node_Conv_12`` has none, so the
initializer is named after its consumer's output). Then an ordered list of regular-expression
rewrites maps framework paths to study labels; users may prepend their own.
"""
from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    import onnx

# (pattern, replacement) applied in order with re.sub on the module path.
DEFAULT_REWRITES: tuple[tuple[str, str], ...] = (
    (r"^(bert\.)?embeddings\.(word|position|token_type)_embeddings$", r"embedding.\2"),
    (r"^(bert\.)?embeddings\.LayerNorm$", r"embedding.norm"),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)$", r"encoder.\2.attention.\3"),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.attention\.output\.dense$", r"encoder.\2.attention.out"),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.attention\.output\.LayerNorm$", r"encoder.\2.attention.norm"),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.intermediate\.dense$", r"encoder.\2.ffn.in"),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.output\.dense$", r"encoder.\2.ffn.out"),
    (r"^(bert\.)?encoder\.layer\.(\d+)\.output\.LayerNorm$", r"encoder.\2.ffn.norm"),
    (r"^(bert\.)?pooler\.dense$", r"pooler"),
    (r"^emb(?:_l|eddings?)?\.(\d+)$", r"embedding.table\1"),
    (r"^fc$", r"classifier"),
)

_ROLE_SUFFIXES = ("weight", "bias", "running_mean", "running_var")


def module_path_of_initializer(name: str) -> str | None:
    """``layer1.0.conv1.weight`` -> ``layer1.0.conv1``; None for auto-generated names."""
    if "::" in name or re.fullmatch(r"(val|_val|const|onnx__|_v)_?\d*.*", name) and "." not in name:
        return None
    parts = name.split(".")
    if len(parts) >= 2 and parts[-1] in _ROLE_SUFFIXES:
        return ".".join(parts[:-1])
    if len(parts) >= 2:
        return name  # e.g. a bare nn.Parameter "model.table"
    return None


def module_path_of_node(node_name: str) -> str | None:
    """Legacy exporter node name ``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``."""
    if not node_name.startswith("/"):
        return None
    pieces = [piece for piece in node_name.split("/") if piece]
    if len(pieces) < 2:
        return None
    scopes = pieces[:-1]
    # Legacy names nest scopes: /layer1/layer1.0/conv1 -> the deepest full path is built by
    # joining the last scope onto its parent when the parent is its prefix.
    path = ""
    for scope in scopes:
        if path and scope.startswith(path + "."):
            path = scope
        elif path:
            path = f"{path}.{scope}"
        else:
            path = scope
    return path or None


def apply_rewrites(path: str, rewrites: Sequence[tuple[str, str]]) -> str:
    """Apply ``rewrites`` in order; the first pattern that matches wins."""
    for pattern, replacement in rewrites:
        new_path, count = re.subn(pattern, replacement, path)
        if count:
            return new_path
    return path


def module_path_of_metadata(node: "onnx.NodeProto") -> str | None:
    """Dynamo exporter: the innermost module of ``metadata_props['pkg.torch.onnx.name_scopes']``.

    The list holds the cumulative module paths, then the aten call's own name
    (``['', 'bert', ..., 'bert.encoder.layer.0.attention.self.query', 'linear']``).
    """
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            modules = [scope for scope in scopes[:-1] if scope]
            return modules[-1] if modules else None
    return None


def component_label(
    initializer_name: str,
    consumer_node_name: str,
    rewrites: Iterable[tuple[str, str]] = (),
    consumer_scope: str | None = None,
) -> str:
    """Component label of a parameter (user rewrites first, then the defaults).

    The module path comes from the initializer name, else the consumer's scope from dynamo
    metadata (``consumer_scope``), else the legacy node name, else the sanitized node name.
    """
    rules = tuple(rewrites) + DEFAULT_REWRITES
    path = module_path_of_initializer(initializer_name)
    if path is None:
        path = consumer_scope
    if path is None:
        path = module_path_of_node(consumer_node_name)
    if path is None:
        path = re.sub(r"[^0-9A-Za-z_.]+", "_", consumer_node_name or initializer_name).strip("_")
    return apply_rewrites(path, rules)


def stable_parameter_name(initializer_name: str, component: str, role: str, taken: set[str]) -> str:
    """Initializer name when it is a readable module path, else ``<component>.<role>``."""
    if module_path_of_initializer(initializer_name) is not None:
        base = initializer_name
    else:
        base = f"{component}.{role}"
    name = base
    index = 1
    while name in taken:
        name = f"{base}_{index}"
        index += 1
    return name
