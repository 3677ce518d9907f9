"""SQL that SQLite and PostgreSQL spell differently, as expressions that compile for each.

The record's times are naive UTC (`timestamp without time zone` on PostgreSQL, text on SQLite);
both spellings read them as UTC.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class int_floor(FunctionElement[int]):  # noqa: N801 (reads as the SQL function it is)
    """A non-negative number rounded down to an integer (SQLite's CAST truncates; PostgreSQL's rounds)."""

    type = Integer()
    inherit_cache = True


class epoch_seconds(FunctionElement[int]):  # noqa: N801
    """Whole seconds since 1970 of a naive UTC time."""

    type = Integer()
    inherit_cache = True


class julian_day(FunctionElement[float]):  # noqa: N801
    """The Julian day number (with its fraction) of a naive UTC time."""

    type = Float()
    inherit_cache = True


class least(FunctionElement[Any]):  # noqa: N801
    """The smaller of two values."""

    inherit_cache = True


@compiles(int_floor)
def _int_floor(element: int_floor, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


@compiles(int_floor, "postgresql")
def _int_floor_pg(element: int_floor, compiler: Any, **kw: Any) -> str:
    return f"CAST(floor({compiler.process(element.clauses, **kw)}) AS BIGINT)"


@compiles(epoch_seconds)
def _epoch(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch_seconds, "postgresql")
def _epoch_pg(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    return f"CAST(floor(extract(epoch FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


@compiles(julian_day)
def _julian(element: julian_day, compiler: Any, **kw: Any) -> str:
    return f"julianday({compiler.process(element.clauses, **kw)})"


@compiles(julian_day, "postgresql")
def _julian_pg(element: julian_day, compiler: Any, **kw: Any) -> str:
    return f"(extract(epoch FROM CAST({compiler.process(element.clauses, **kw)} AS TIMESTAMP)) / 86400.0 + 2440587.5)"


@compiles(least)
def _least(element: least, compiler: Any, **kw: Any) -> str:
    return f"min({compiler.process(element.clauses, **kw)})"


@compiles(least, "postgresql")
def _least_pg(element: least, compiler: Any, **kw: Any) -> str:
    return f"least({compiler.process(element.clauses, **kw)})"


def json_values_join(dialect: str, column: str, alias: str = "j") -> str:
    """A LEFT JOIN of each element of the JSON array in `column` as `alias`.value (NULL for an empty array)."""
    if dialect == "postgresql":
        return f"LEFT JOIN LATERAL json_array_elements_text(CAST({column} AS json)) AS {alias}(value) ON true"
    return f"LEFT JOIN json_each({column}) AS {alias}"
