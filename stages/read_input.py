"""Fetch the raw bytes of one input: a file, a row of a Parquet file or a member of a tar, on
whatever filesystem its URI names (`pipeline.core.filesystems`, with the run's `io.*` settings;
credentials from the worker's environment)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.filesystems import filesystem, is_remote


@lru_cache(maxsize=4)
def _parquet_file(path: str, io_json: str) -> pq.ParquetFile:
    """Kept open per worker: consecutive rows of one file read its footer once. The io block
    travels as JSON because a cache key must be hashable."""
    if not is_remote(path):
        return pq.ParquetFile(path)
    fs, inner = filesystem(path, json.loads(io_json))
    return pq.ParquetFile(fs.open(inner, "rb"))


@lru_cache(maxsize=4)
def _row_group(path: str, io_json: str, column: str, group: int) -> pa.ChunkedArray:
    return _parquet_file(path, io_json).read_row_group(group, columns=[column]).column(column)


def _parquet_bytes(path: str, column: str, row: int, io: dict[str, Any] | None) -> bytes:
    io_json = json.dumps(io or {}, sort_keys=True)
    meta = _parquet_file(path, io_json).metadata
    start = 0
    for group in range(meta.num_row_groups):
        count = meta.row_group(group).num_rows
        if row < start + count:
            value = _row_group(path, io_json, column, group)[row - start].as_py()
            if isinstance(value, dict):
                value = value.get("bytes")
            if value is None:
                raise ValueError(f"row {row} of {path} has no image bytes")
            return value
        start += count
    raise IndexError(f"row {row} is beyond the end of {path}")


def _tar_member(record: dict[str, Any], io: dict[str, Any] | None) -> bytes:
    fs, inner = filesystem(record["path"], io)
    start, size = int(record["offset"]), int(record["size"])
    data = fs.cat_file(inner, start=start, end=start + size)  # one ranged read, not the tar
    if len(data) != size:
        raise OSError(f"{record['uri']}: member truncated ({len(data)} of {size} bytes)")
    return data


def read_input_bytes(record: dict[str, Any], io: dict[str, Any] | None = None) -> bytes:
    kind = record["kind"]
    if kind == "file":
        if not is_remote(record["path"]):
            with open(record["path"], "rb") as handle:
                return handle.read()
        fs, inner = filesystem(record["path"], io)
        return fs.cat_file(inner)
    if kind == "parquet":
        return _parquet_bytes(record["path"], record["column"], record["row"], io)
    if kind == "tar":
        return _tar_member(record, io)
    raise ValueError(f"unknown input kind {kind!r}")
