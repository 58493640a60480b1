"""Fetch the raw bytes of one input, from a file or a row of a Parquet file."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


@lru_cache(maxsize=4)
def _row_group(path: str, column: str, group: int) -> pa.ChunkedArray:
    return pq.ParquetFile(path).read_row_group(group, columns=[column]).column(column)


def _parquet_bytes(path: str, column: str, row: int) -> bytes:
    meta = pq.ParquetFile(path).metadata
    start = 0
    for group in range(meta.num_row_groups):
        count = meta.row_group(group).num_rows
        if row < start + count:
            value = _row_group(path, column, group)[row - start].as_py()
            if isinstance(value, dict):
                value = value.get("bytes")
            if value is None:
                raise ValueError(f"row {row} of {path} has no image bytes")
            return value
        start += count
    raise IndexError(f"row {row} is beyond the end of {path}")


def read_input_bytes(record: dict[str, Any]) -> bytes:
    if record["kind"] == "file":
        with open(record["path"], "rb") as handle:
            return handle.read()
    if record["kind"] == "parquet":
        return _parquet_bytes(record["path"], record["column"], record["row"])
    raise ValueError(f"unknown input kind {record['kind']!r}")
