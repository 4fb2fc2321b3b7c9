"""Arrow tables as Delta stores them: :func:`normalize_for_delta` maps every type Delta has no
counterpart for (at every nesting level) before a plan's result is written."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, Final

import pyarrow as pa


def normalize_for_delta(table: pa.Table) -> pa.Table:
    """``table`` with a schema Delta stores, at every nesting level.

    - no field metadata (a column read from a column-mapped table carries ``delta.columnMapping.*``, and
      deltalake refuses to create a table from such fields; Parquet field ids alike);
    - view, large and dictionary types as their plain types; fixed-size and view lists as lists;
      unsigned integers as ``int64``; ``float16`` as ``float32``; ``date64`` as ``date32``;
      ``decimal256`` as ``decimal128`` (precision over 38: as text);
    - types Delta has no counterpart for: times of day as text (``HH:MM:SS`` and the fraction of their
      unit), durations as ``int64`` microseconds, intervals as
      ``struct<months: int32, days: int32, nanoseconds: int64>``.

    Raises ``pyarrow.ArrowInvalid`` when a value does not fit (an unsigned integer above ``int64``).
    """
    target = pa.schema([_delta_field(f) for f in table.schema])
    if table.schema.equals(target, check_metadata=True):
        return table
    columns = [
        _delta_column(table.column(index), source.type, field.type)
        for index, (source, field) in enumerate(zip(table.schema, target, strict=True))
    ]
    return pa.Table.from_arrays(columns, schema=target)


def _delta_field(source: pa.Field) -> pa.Field:
    nullable = source.nullable or pa.types.is_null(source.type)
    return pa.field(source.name, _delta_type(source.type), nullable)


def _delta_type(dtype: pa.DataType) -> pa.DataType:
    """The Delta-storable type for ``dtype``, nested fields rebuilt without metadata."""
    if pa.types.is_dictionary(dtype):
        return _delta_type(dtype.value_type)
    for matches, plain in _PLAIN_TYPES:
        if matches(dtype):
            return plain
    if pa.types.is_decimal256(dtype):
        return pa.decimal128(dtype.precision, dtype.scale) if dtype.precision <= 38 else pa.string()
    return _delta_nested_type(dtype)


def _delta_nested_type(dtype: pa.DataType) -> pa.DataType:
    """Lists (of every kind, as plain lists), maps and structs with Delta-storable fields; other types
    as they are."""
    if isinstance(dtype, _LIST_TYPES):
        return pa.list_(_delta_field(dtype.value_field))
    if pa.types.is_map(dtype):
        key, item = _delta_field(dtype.key_field), _delta_field(dtype.item_field)
        # pyarrow-stubs types map_'s key and item as DataType only; pyarrow takes Fields (names, nullability).
        return pa.map_(key, item, dtype.keys_sorted)  # pyright: ignore[reportArgumentType]
    if pa.types.is_struct(dtype):
        return pa.struct([_delta_field(dtype.field(i)) for i in range(dtype.num_fields)])
    return dtype


_INTERVAL: Final = pa.struct(
    [pa.field("months", pa.int32()), pa.field("days", pa.int32()), pa.field("nanoseconds", pa.int64())]
)

_PLAIN_TYPES: Final[tuple[tuple[Callable[[pa.DataType], bool], pa.DataType], ...]] = (
    (pa.types.is_string_view, pa.string()),
    (pa.types.is_large_string, pa.string()),
    (pa.types.is_binary_view, pa.binary()),
    (pa.types.is_large_binary, pa.binary()),
    (pa.types.is_fixed_size_binary, pa.binary()),
    (pa.types.is_unsigned_integer, pa.int64()),
    (pa.types.is_float16, pa.float32()),
    (pa.types.is_date64, pa.date32()),
    (pa.types.is_time, pa.string()),  # as text: HH:MM:SS and the fraction of its unit
    (pa.types.is_duration, pa.int64()),  # microseconds
    (pa.types.is_interval, _INTERVAL),
)
"""Types Delta stores as one plain type, whatever their parameters."""


_LIST_TYPES: Final = (
    pa.ListType,
    pa.LargeListType,
    pa.FixedSizeListType,
    pa.ListViewType,
    pa.LargeListViewType,
)


def _contains(dtype: pa.DataType, predicate: Callable[[pa.DataType], bool]) -> bool:
    if predicate(dtype):
        return True
    if pa.types.is_dictionary(dtype):
        return _contains(dtype.value_type, predicate)
    return any(_contains(dtype.field(i).type, predicate) for i in range(dtype.num_fields))


def _microsecond_durations(dtype: pa.DataType) -> pa.DataType:
    """``dtype`` with every duration in microseconds (the unit Delta's timestamps use)."""
    if pa.types.is_duration(dtype):
        return pa.duration("us")
    if isinstance(dtype, _LIST_TYPES):  # the same kind of list: pyarrow 26 casts list views to invalid lists
        return _same_list(dtype, dtype.value_field.with_type(_microsecond_durations(dtype.value_type)))
    if pa.types.is_map(dtype):
        key, item = dtype.key_field, dtype.item_field
        key = key.with_type(_microsecond_durations(key.type))
        item = item.with_type(_microsecond_durations(item.type))
        return pa.map_(key, item)  # pyright: ignore[reportArgumentType] - Fields, as above
    if pa.types.is_struct(dtype):
        return pa.struct([f.with_type(_microsecond_durations(f.type)) for f in dtype])
    return dtype


def _same_list(dtype: pa.DataType, value_field: pa.Field) -> pa.DataType:
    if pa.types.is_list_view(dtype):
        return pa.list_view(value_field)
    if pa.types.is_large_list_view(dtype):
        return pa.large_list_view(value_field)
    if pa.types.is_large_list(dtype):
        return pa.large_list(value_field)
    if pa.types.is_fixed_size_list(dtype):
        return pa.list_(value_field, dtype.list_size)
    return pa.list_(value_field)


def _rebuilt_by_value(dtype: pa.DataType) -> bool:
    """Types pyarrow cannot cast to their Delta type: intervals (no cast), list views (pyarrow 26 casts
    them to lists whose offsets are invalid, without an error)."""
    return pa.types.is_interval(dtype) or pa.types.is_list_view(dtype) or pa.types.is_large_list_view(dtype)


def _delta_column(column: pa.ChunkedArray, source: pa.DataType, target: pa.DataType) -> pa.ChunkedArray:
    if _contains(source, pa.types.is_duration):
        # Sub-microsecond parts are truncated, as deltalake truncates nanosecond timestamps.
        column = column.cast(_microsecond_durations(source), safe=False)
    if _contains(source, _rebuilt_by_value):
        chunks = [pa.array(_delta_value(c.to_pylist()), type=target) for c in column.chunks]
        # pyarrow-stubs has no overload for a DataType object as `type` (only names and literal types).
        return pa.chunked_array(chunks, type=target)  # pyright: ignore[reportCallIssue, reportArgumentType]
    return column.cast(target)


def _delta_value(value: Any) -> Any:
    """A Python value of an Arrow array as the Delta-storable type of :func:`_delta_type` takes it."""
    if isinstance(value, pa.MonthDayNano):
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, datetime.timedelta):
        return value // datetime.timedelta(microseconds=1)
    if isinstance(value, datetime.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _delta_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_delta_value(v) for v in value)
    return value
