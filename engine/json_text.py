"""Values as JSON text, exactly as polars' `struct.json_encode` writes them, made in Python.

    encode = encoder(pl.Date)                 # None when the type is not covered
    encode(date(2026, 6, 30)) == '"2026-06-30"'
    fields = body_encoder({"a": pl.Int64, "b": pl.String})
    fields((1, "x")) == '"a":1,"b":"x"'       # an object's members, without the braces

Why: a check's findings are a few rows a rule, and turning them into evidence JSON with polars
expressions (sort, struct, encode, slice) cost ~0.1 ms of fixed overhead a rule, a twentieth of a
whole check. The evidence must be the nightly run's to the character (engine.run.fold encodes it
with polars), so this follows polars' output: strings escaped as serde_json escapes them (as
Python's json module does without ensure_ascii), floats in their shortest form with polars'
exponent rule (exponents from -5 to 15 written out; NaN and infinities as null), dates in ISO
form, structs as objects in field order, lists as arrays. Types it does not cover (datetimes,
decimals, 32-bit floats, ...) get no encoder: the caller encodes those with polars.
tests/engine/test_json_text.py holds it to polars' own encoding with hypothesis.
"""

from __future__ import annotations

import json.encoder
import math
from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl

__all__ = ["body_encoder", "encoder"]

Encode = Callable[[Any], str]

_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]
_INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


def _float(value: float) -> str:
    if not math.isfinite(value):
        return "null"
    text = repr(value)  # shortest round-trip digits, as polars writes them
    mantissa, marker, exponent = text.partition("e-")
    if not marker:
        return text  # written out, or a positive exponent (1e+16): the same in both
    places = int(exponent)
    if places > 5:
        return f"{mantissa}e-{places}"  # polars: 1.5e-7, Python: 1.5e-07
    # Python writes 1e-05 with an exponent; polars writes it out: 0.00001.
    sign, digits = ("-", mantissa[1:]) if mantissa.startswith("-") else ("", mantissa)
    return f"{sign}0.{'0' * (places - 1)}{digits.replace('.', '')}"


def _nullable(encode: Encode) -> Encode:
    return lambda value: "null" if value is None else encode(value)


def encoder(dtype: pl.DataType | type[pl.DataType]) -> Encode | None:
    """How polars writes a value of `dtype` (None: a null), or None for a type not covered."""
    if dtype == pl.String:
        return _nullable(_string)
    if dtype == pl.Float64:
        return _nullable(_float)
    if dtype == pl.Boolean:
        return _nullable(lambda value: "true" if value else "false")
    if any(dtype == integer for integer in _INTEGERS):
        return _nullable(str)
    if dtype == pl.Date:
        return _nullable(lambda value: f'"{date.isoformat(value)}"')
    if dtype == pl.Null:
        return lambda _: "null"
    if isinstance(dtype, pl.List):
        inner = encoder(dtype.inner)
        if inner is None:
            return None
        return _nullable(lambda values: "[" + ",".join(map(inner, values)) + "]")
    if isinstance(dtype, pl.Struct):
        fields = {field.name: encoder(field.dtype) for field in dtype.fields}
        if any(encode is None for encode in fields.values()):
            return None
        named = [(_string(name) + ":", name, encode) for name, encode in fields.items()]
        return _nullable(lambda value: "{" + ",".join(key + encode(value[name]) for key, name, encode in named) + "}")
    return None


def body_encoder(schema: dict[str, pl.DataType]) -> Callable[[tuple[Any, ...]], str] | None:
    """The members of an object of `schema`'s columns (`"a":1,"b":2`, what polars' encoding of
    their struct gives less its braces) from a row of their values in that order; None when a
    column's type is not covered."""
    encoders = [encoder(dtype) for dtype in schema.values()]
    if any(encode is None for encode in encoders):
        return None
    named = [(_string(name) + ":", encode) for name, encode in zip(schema, encoders, strict=True)]
    return lambda values: ",".join(key + encode(value)  # type: ignore[misc]
                                   for (key, encode), value in zip(named, values, strict=True))
