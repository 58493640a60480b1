"""Where an input lives: a local path, or a URI on any fsspec filesystem (s3://, gs://, ...),
opened with the run's `io.*` settings.

Credentials come only from each store's own chain (for S3: AWS_* variables, AWS_PROFILE and
~/.aws, instance roles; for GCS: application default credentials); nothing here reads, stores or
prints them, and messages name the URI with any user:password part removed."""

from __future__ import annotations

import re
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

DEFAULT_IO = {"endpoint_url": None, "anon": False, "timeout_s": 30, "retries": 3, "options": {}}


class InputError(ValueError):
    """The input cannot be planned: missing, unreachable, unreadable or of an unknown kind."""


def protocol_of(uri: str) -> str:
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", uri)
    return match.group(1).lower() if match else "file"


def is_remote(uri: str) -> bool:
    return protocol_of(uri) not in ("file", "local")


def redact(uri: str) -> str:
    """A URI fit for a message or a log: no user:password@."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", uri)


def storage_options(protocol: str, io: dict[str, Any] | None) -> dict[str, Any]:
    """The fsspec options for one protocol: the endpoint, anonymous access, timeouts and retries,
    then the user's `io.options.<protocol>` on top."""
    io = {**DEFAULT_IO, **(io or {})}
    opts: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        # a listing of millions of keys is paged through (pipeline.core.listing), never cached
        opts["use_listings_cache"] = False
        opts["config_kwargs"] = {
            "connect_timeout": io["timeout_s"],
            "read_timeout": io["timeout_s"],
            "retries": {"max_attempts": io["retries"]},
        }
        if io["endpoint_url"]:
            opts["endpoint_url"] = io["endpoint_url"]
        if io["anon"]:
            opts["anon"] = True
    elif protocol in ("gs", "gcs"):
        if io["endpoint_url"]:
            opts["endpoint_url"] = io["endpoint_url"]
        if io["anon"]:
            opts["token"] = "anon"
        opts["timeout"] = io["timeout_s"]
    opts.update((io["options"] or {}).get(protocol, {}))
    return opts


def filesystem(uri: str, io: dict[str, Any] | None = None, fresh: bool = False) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and the path on it. `fresh` skips fsspec's instance cache: the driver
    plans with the environment as it is now, not as an earlier call found it."""
    if not is_remote(uri):
        return LocalFileSystem(), uri
    try:
        fs, path = fsspec.core.url_to_fs(uri, skip_instance_cache=fresh, **storage_options(protocol_of(uri), io))
    except ImportError as exc:
        raise InputError(f"no filesystem for {redact(uri)}: {exc}") from None
    except ValueError as exc:  # an unknown protocol
        raise InputError(f"no filesystem for {redact(uri)}: {exc}") from None
    if hasattr(fs, "retries"):  # s3fs retries some errors itself, on top of botocore's attempts
        fs.retries = {**DEFAULT_IO, **(io or {})}["retries"]
    return fs, path.rstrip("/")


def full_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The URI of a path on `fs`, as records and rows carry it (local paths stay plain)."""
    return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)


def failure_message(uri: str, exc: BaseException) -> str:
    """Why `uri` could not be read, in words that name it and what to do; never a credential."""
    name = type(exc).__name__
    text = str(exc)
    where = redact(uri)
    if name in ("NoCredentialsError", "PartialCredentialsError") or "credentials" in text.lower() and "locate" in text.lower():
        return (
            f"cannot read {where}: no credentials found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
            "use an instance role, or --set io.anon=true for a public bucket"
        )
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError") or isinstance(
        exc, (ConnectionError, TimeoutError)
    ):
        return f"cannot reach the store for {where}: {text} (check io.endpoint_url or AWS_ENDPOINT_URL and the network)"
    if isinstance(exc, PermissionError):
        return f"access to {where} denied: {text}"
    if isinstance(exc, FileNotFoundError):
        return f"input not found: {where}"
    return f"cannot read {where}: {name}: {text}"


STORE_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "google")


def is_store_error(exc: BaseException) -> bool:
    """An error from reaching or reading a store (as opposed to a bug)."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in STORE_MODULES


def probe(uri: str, io: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str, dict[str, Any]]:
    """Reach the input once before anything starts: the filesystem, the path and its info
    (type file or directory). Any failure is an InputError naming the URI."""
    fs, path = filesystem(uri, io, fresh=True)
    try:
        info = fs.info(path)
    except Exception as exc:  # every store raises its own types: they are all "cannot plan"
        raise InputError(failure_message(uri, exc)) from None
    return fs, path, info
