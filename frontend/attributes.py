"""ONNX node attributes as Python values, with the operator schema's defaults filled in.

``node_attributes(node, opset)`` is what a lowering rule sees through ``ctx.attrs(node)``:
every attribute the node sets, plus every attribute it leaves out that has a default in the
ONNX operator schema of ``node.op_type`` at the model's opset for ``node.domain``
(``onnx.defs.get_schema(op_type, opset, domain).attributes[name].default_value``). An
attribute without a schema default (a required one, or one whose meaning depends on the
input, e.g. Conv ``pads``) stays absent; so does every attribute of an op of a domain ONNX does
not define (a custom domain). An op used before the opset that introduced it (e.g.
LayerNormalization in an opset-12 model, as some optimisers write) takes the defaults of its
earliest schema.

Values: ints and floats as Python ``int``/``float`` (an ONNX FLOAT attribute is float32, so a
default such as LeakyRelu ``alpha`` = 0.01 arrives as ``float(np.float32(0.01))``, exactly as
if the model had written it), strings as ``str``, tensors as numpy arrays, graphs as
``onnx.GraphProto``, lists as lists.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

import onnx
from onnx import helper, numpy_helper

# (domain, op_type, opset) -> {attribute name: default value}; {} when there is no schema.
_SCHEMA_DEFAULTS: dict[tuple[str, str, int], dict[str, Any]] = {}

DEFAULT_DOMAINS = ("", "ai.onnx")


def attribute_value(attribute: onnx.AttributeProto) -> Any:
    """One ONNX attribute as a Python value (bytes decoded to str, tensors to numpy)."""
    value = helper.get_attribute_value(attribute)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode("utf-8") for v in value]
    return value


def explicit_attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """Only the attributes ``node`` itself sets (no defaults)."""
    return {attribute.name: attribute_value(attribute) for attribute in node.attribute}


def schema_defaults(op_type: str, domain: str, opset: int | None) -> Mapping[str, Any]:
    """Attribute defaults of ``domain.op_type`` in opset version ``opset`` (cached).

    ``domain`` ``""`` and ``"ai.onnx"`` are the same default domain. Returns ``{}`` when
    ``opset`` is None (the model does not import ``domain``) or no schema exists.
    """
    domain = "" if domain in DEFAULT_DOMAINS else domain
    if opset is None:
        return {}
    key = (domain, op_type, int(opset))
    if key not in _SCHEMA_DEFAULTS:
        try:
            schema = onnx.defs.get_schema(op_type, int(opset), domain)
        except onnx.defs.SchemaError:  # custom domain, or an op newer than the model's opset
            schema = earliest_schema(op_type, domain)
        _SCHEMA_DEFAULTS[key] = {} if schema is None else {
            name: attribute_value(spec.default_value)
            for name, spec in schema.attributes.items()
            if spec.default_value.type != onnx.AttributeProto.UNDEFINED
        }
    return _SCHEMA_DEFAULTS[key]


def earliest_schema(op_type: str, domain: str):
    """The first schema version of ``domain.op_type``, or None if ONNX does not define it."""
    versions = [s for s in onnx.defs.get_all_schemas_with_history()
                if s.name == op_type and s.domain == domain]
    return min(versions, key=lambda s: s.since_version) if versions else None


def node_attributes(node: onnx.NodeProto, opset: int | None) -> dict[str, Any]:
    """The node's own attributes (in node order), then its schema defaults at ``opset`` (the
    model's opset for ``node.domain``) for every attribute it leaves out."""
    filled = explicit_attributes(node)
    for name, default in schema_defaults(node.op_type, node.domain, opset).items():
        if name not in filled:
            filled[name] = copy.deepcopy(default)  # the cached default stays untouched
    return filled
