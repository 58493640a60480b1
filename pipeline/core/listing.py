"""The files under an input folder, in the order of their keys (paths relative to the folder),
yielded as they are found: planning never holds the listing of a whole input.

The order is plain string order of the whole key, as S3 lists objects: a local folder is walked
with each directory's entries sorted (a subdirectory sorts as its name plus "/"), which gives the
same order as sorting every key, while holding one directory's names at a time. An S3 listing is
read page by page (1000 keys a request) and arrives sorted; other stores are walked one directory
at a time, sorted."""

from __future__ import annotations

import os
from typing import Iterator, NamedTuple

import fsspec
from fsspec.implementations.local import LocalFileSystem

PAGE = 1000  # S3's own page size


class Listed(NamedTuple):
    key: str  # the path relative to the listed folder, "/"-separated
    path: str  # the path on the filesystem


def iter_files(fs: fsspec.AbstractFileSystem, root: str) -> Iterator[Listed]:
    if isinstance(fs, LocalFileSystem):
        yield from _local(root, "")
    elif type(fs).__module__.split(".")[0] == "s3fs":  # its flat listing, paged (a private method of s3fs)
        yield from _s3_pages(fs, root)
    else:
        yield from _walk(fs, root, "")


def _local(root: str, prefix: str) -> Iterator[Listed]:
    directory = os.path.join(root, prefix) if prefix else root
    with os.scandir(directory) as scan:
        entries = []
        for entry in scan:
            is_dir = entry.is_dir()
            if is_dir and entry.is_symlink():  # as os.walk(followlinks=False): not descended
                continue
            entries.append((entry.name + "/" if is_dir else entry.name, is_dir))
    entries.sort()
    for name, is_dir in entries:
        if is_dir:
            yield from _local(root, prefix + name)
        else:
            path = os.path.join(directory, name)
            yield Listed(prefix + name, path)


def _s3_pages(fs, root: str) -> Iterator[Listed]:
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(root)
    prefix = key + "/" if key else ""
    pages = fs._iterdir(bucket, delimiter="", prefix=prefix)  # a flat listing, paged by S3

    async def next_page() -> list[dict]:
        out = []
        while len(out) < PAGE:
            try:
                out.append(await pages.__anext__())
            except StopAsyncIteration:
                break
        return out

    start = len(bucket) + 1 + len(prefix)
    while True:
        page = sync(fs.loop, next_page)
        if not page:
            return
        for item in page:
            if item["type"] == "file" and not item["name"].endswith("/"):  # "folder/" marker objects are not files
                yield Listed(item["name"][start:], item["name"])


def _walk(fs, root: str, prefix: str) -> Iterator[Listed]:
    directory = f"{root}/{prefix}".rstrip("/")
    entries = []
    for info in fs.ls(directory, detail=True):
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        is_dir = info["type"] == "directory"
        entries.append((name + "/" if is_dir else name, is_dir))
    entries.sort()
    for name, is_dir in entries:
        if is_dir:
            yield from _walk(fs, root, prefix + name)
        else:
            yield Listed(prefix + name, f"{directory}/{name}")
