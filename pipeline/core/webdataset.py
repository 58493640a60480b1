"""WebDataset tar shards as img2dataset writes them (`000000000.jpg` beside `000000000.json`
and `000000000.txt`), indexed member by member without unpacking: one record per sample key with
the image member's byte offset and size in the tar, so a worker reads just those bytes.

A sample is the run of consecutive members that share a key (the name up to the first dot of
its file name), as in the webdataset package. The small .json and .txt members are read here for
caption, URL and licence. Damage becomes one record with a `problem` (an error row), and the rest
of the tar is still read: a key with no image, a .json that does not parse, a damaged member
header (tarfile skips it with `ignore_zeros`, and the skipped bytes are reported)."""

from __future__ import annotations

import json
import re
import tarfile
from typing import Any, Iterator

import fsspec

from pipeline.core.filesystems import full_uri
from pipeline.core.input_fields import IMAGE_EXTENSIONS, described

KEY_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset's base_plus_ext
MAX_META_BYTES = 1 << 20  # a .json or .txt larger than this is not metadata
BLOCK = 8 << 20  # read size on object stores: the headers are read in passing


def _split(name: str) -> tuple[str, str]:
    match = KEY_RE.match(name)
    return (match.group(1), match.group(2).lower()) if match else (name, "")


def tar_records(fs: fsspec.AbstractFileSystem, path: str, tar_key: str, input_cfg: dict[str, Any]) -> Iterator[dict[str, Any]]:
    uri = full_uri(fs, path)
    with fs.open(path, "rb", block_size=BLOCK) as handle:
        try:
            tar = tarfile.open(fileobj=handle, mode="r:", ignore_zeros=True)
        except (tarfile.TarError, EOFError) as exc:  # a store's OSError fails the plan instead: a rerun retries it
            yield _problem(uri, tar_key, 0, f"webdataset: {tar_key} is not a readable tar: {exc}")
            return
        group: list[tarfile.TarInfo] = []
        expected = 0  # where the next header starts if nothing is damaged
        while True:
            try:
                info = tar.next()
            except (tarfile.TarError, EOFError) as exc:
                yield from _sample(tar, uri, tar_key, group, input_cfg)
                yield _problem(uri, tar_key, expected, f"webdataset: {tar_key} unreadable from byte {expected}: {exc}")
                return
            tar.members = []  # tarfile keeps every header it read; a tar can hold 100,000 members
            if info is None:
                break
            if info.offset > expected and _damaged(handle, expected, info.offset):
                yield from _sample(tar, uri, tar_key, group, input_cfg)
                group = []
                yield _problem(
                    uri, tar_key, expected,
                    f"webdataset: {tar_key}: bytes {expected}-{info.offset} skipped, a damaged member header",
                )
            expected = info.offset_data + -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            if not info.isfile():
                continue
            if group and _split(group[0].name)[0] != _split(info.name)[0]:
                yield from _sample(tar, uri, tar_key, group, input_cfg)
                group = []
            group.append(info)
        yield from _sample(tar, uri, tar_key, group, input_cfg)


def _damaged(handle, start: int, end: int) -> bool:
    """Zero blocks between members are padding (or concatenated tars); anything else is damage."""
    handle.seek(start)
    return any(handle.read(min(end - start, MAX_META_BYTES)))


def _problem(uri: str, tar_key: str, offset: int, reason: str) -> dict[str, Any]:
    return {"key": f"{tar_key}/@{offset}", "uri": f"{uri}#@{offset}", "kind": "tar", "path": uri, "problem": reason}


def _read_meta(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    if info.size > MAX_META_BYTES:
        raise ValueError(f"{info.name} is {info.size} bytes, more than metadata")
    handle = tar.extractfile(info)
    return handle.read() if handle else b""


def _sample(tar: tarfile.TarFile, uri: str, tar_key: str, group: list[tarfile.TarInfo], input_cfg: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if not group:
        return
    sample_key = _split(group[0].name)[0]
    by_ext = {}
    for info in group:
        by_ext.setdefault(_split(info.name)[1], info)
    image = next((info for info in group if "." + _split(info.name)[1] in IMAGE_EXTENSIONS), None)
    values: dict[str, Any] = {}
    problem = None
    try:
        if "txt" in by_ext:
            values["caption"] = _read_meta(tar, by_ext["txt"]).decode("utf-8", "replace").strip()
        if "json" in by_ext:
            meta = json.loads(_read_meta(tar, by_ext["json"]))
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
            values.update({k: v for k, v in meta.items() if v is not None})
    except (ValueError, tarfile.TarError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        problem = f"webdataset: {by_ext.get('json', group[0]).name} in {tar_key} is not valid metadata: {exc}"
    if image is None and problem is None:
        problem = f"webdataset: key {sample_key} in {tar_key} has no image (members: {', '.join(i.name for i in group)})"
    name = image.name if image is not None else sample_key
    record = {"key": f"{tar_key}/{name}", "uri": f"{uri}#{name}", "kind": "tar", "path": uri, **described(values, input_cfg)}
    if image is not None:
        record.update(offset=image.offset_data, size=image.size)
    if problem:
        record["problem"] = problem
    yield record
