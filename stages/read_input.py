"""Fetch the raw bytes of one input: a file, a row of a Parquet file or a member of a tar, on
whatever filesystem its URI names (`pipeline.core.filesystems`, with the run's `io.*` settings;
credentials from the worker's environment). A local file is read only when it is a regular file,
and no input larger than `decode.max_bytes` is read (`pipeline.core.input_guard`)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.filesystems import filesystem, is_remote
from pipeline.core.input_guard import UnsafeInput, check_size, read_local


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
            if not isinstance(value, bytes):  # a column of strings (paths, base64) is not an image
                raise UnsafeInput(f"row {row} of {path}: column {column!r} holds {type(value).__name__}, not image bytes")
            return value
        start += count
    raise IndexError(f"row {row} is beyond the end of {path}")


def _tar_member(record: dict[str, Any], io: dict[str, Any] | None, max_bytes: int | None) -> bytes:
    fs, inner = filesystem(record["path"], io)
    start, size = int(record["offset"]), int(record["size"])
    check_size(size, max_bytes)
    data = fs.cat_file(inner, start=start, end=start + size)  # one ranged read, not the tar
    if len(data) != size:
        raise OSError(f"{record['uri']}: member truncated ({len(data)} of {size} bytes)")
    return data


def read_input_bytes(record: dict[str, Any], io: dict[str, Any] | None = None, max_bytes: int | None = None) -> bytes:
    """Raises UnsafeInput for an input the run will not read, OSError when it cannot."""
    kind = record["kind"]
    if kind == "file":
        if not is_remote(record["path"]):
            return read_local(record["path"], max_bytes)
        fs, inner = filesystem(record["path"], io)
        with fs.open(inner, "rb") as handle:  # its size is known (one HEAD) before a byte is read
            check_size(handle.size, max_bytes)
            return handle.read()
    if kind == "parquet":
        data = _parquet_bytes(record["path"], record["column"], record["row"], io)
        check_size(len(data), max_bytes)  # read with its row group: refused before decoding
        return data
    if kind == "tar":
        return _tar_member(record, io, max_bytes)
    raise ValueError(f"unknown input kind {kind!r}")
