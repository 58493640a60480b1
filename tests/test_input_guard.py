"""Inputs that stay inside their folder: symlinks out of it, FIFOs, devices, sockets and files
over decode.max_bytes are refused with a reason, never opened or hashed, and never hang."""

import json
import os
import signal
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.config import ConfigError, load_config, parse_set
from pipeline.core.input_guard import UnsafeInput, read_local
from pipeline.core.inputs import InputError, discover
from stages.decode import DecodeLimits
from stages.decode_stage import DecodeStage
from stages.read_input import read_input_bytes
from tests import input_makers as mk


@pytest.fixture(autouse=True)
def no_hang():
    """A FIFO that is opened blocks forever: fail the test after 10 s instead."""
    def fail(*_):
        raise TimeoutError("the read hung")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _cfg(path, **kw):
    return {"path": str(path), "format": "auto", "annotations": None, "license": None, "image_column": None,
            "license_column": "license", "caption_columns": ["caption"], "url_columns": ["url"], "uri_column": None, **kw}


def _decode(record, **limits):
    row = {"_input": json.dumps({**record, "index": 0}), "status": "pending"}
    return DecodeStage(DecodeLimits(working_size=128, **limits)).process_row(row)


@pytest.fixture
def hostile(tmp_path):
    """An input folder holding one good photo and every kind of thing that is not one."""
    root, outside = tmp_path / "in", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "good.jpg").write_bytes(mk.jpeg(1))
    (outside / "secret.jpg").write_bytes(mk.jpeg(2))
    (root / "link_out.jpg").symlink_to(outside / "secret.jpg")
    (root / "link_in.jpg").symlink_to(root / "good.jpg")
    (root / "zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(root / "pipe.jpg")
    os.mkfifo(root / "pipe.tar")  # a container: opened while planning, were it not refused
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.png"))
    yield root
    sock.close()


def test_folder_refuses_what_is_not_a_regular_file_inside(hostile):
    records = {r["key"]: r for r in discover(_cfg(hostile))}
    assert set(records) == {"good.jpg", "link_in.jpg", "link_out.jpg", "pipe.jpg", "pipe.tar", "sock.png", "zero.jpg"}
    assert "problem" not in records["good.jpg"] and "problem" not in records["link_in.jpg"]
    assert "out of the input folder" in records["link_out.jpg"]["problem"]
    assert "out of the input folder" in records["zero.jpg"]["problem"]
    assert "a FIFO" in records["pipe.jpg"]["problem"] and "a FIFO" in records["pipe.tar"]["problem"]
    assert "a socket" in records["sock.png"]["problem"]
    # a refused row is an error row with the reason, and nothing of the file: not even its hash
    row = _decode(records["link_out.jpg"])
    assert row["status"] == "error" and "out of the input folder" in row["reason"] and not row.get("source_sha256")


def test_follow_symlinks_false_and_all(hostile):
    strict = {r["key"]: r for r in discover(_cfg(hostile, follow_symlinks="false"))}
    assert "a symbolic link" in strict["link_in.jpg"]["problem"]
    loose = {r["key"]: r for r in discover(_cfg(hostile, follow_symlinks="all"))}
    assert "problem" not in loose["link_out.jpg"]
    assert "a character device" in loose["zero.jpg"]["problem"]  # followed, and still not a file


def test_workers_check_the_file_they_open(hostile, tmp_path):
    """A record planned as a file that is now a FIFO or a device is refused at once, unread."""
    for path in (hostile / "pipe.jpg", "/dev/zero"):
        row = _decode({"key": "x.jpg", "uri": str(path), "kind": "file", "path": str(path)})
        assert row["status"] == "error" and "not a regular file" in row["reason"] and not row.get("source_sha256")
    with pytest.raises(UnsafeInput, match="a character device"):
        read_local("/dev/null", None)


def test_over_size_files_are_refused_before_reading(tmp_path):
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as handle:  # sparse: 3 GiB named, nothing written
        handle.truncate(3 << 30)
    row = _decode({"key": "huge.jpg", "uri": str(huge), "kind": "file", "path": str(huge)}, max_bytes=1 << 30)
    assert row["status"] == "error" and "over decode.max_bytes" in row["reason"] and not row.get("source_sha256")
    small = tmp_path / "small.jpg"
    small.write_bytes(mk.jpeg(3))
    with pytest.raises(UnsafeInput, match="over decode.max_bytes"):
        read_input_bytes({"kind": "file", "path": str(small)}, None, max_bytes=100)
    assert read_input_bytes({"kind": "file", "path": str(small)}, None, max_bytes=1 << 20) == mk.jpeg(3)


def test_a_named_input_that_is_not_a_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.parquet")
    with pytest.raises(InputError, match="a FIFO, not a regular file"):
        discover(_cfg(tmp_path / "pipe.parquet"))


def test_manifest_paths_stay_in_the_manifest_folder(tmp_path):
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "ok.jpg").write_bytes(mk.jpeg(0))
    (tmp_path / "secret.jpg").write_bytes(mk.jpeg(1))
    rows = [{"uri": "ok.jpg"}, {"uri": "../secret.jpg"}, {"uri": str(tmp_path / "secret.jpg")}, {"uri": "file:///etc/hostname"}]
    manifest = tmp_path / "list" / "m.parquet"
    pq.write_table(pa.Table.from_pylist(rows), manifest)
    records = discover(_cfg(manifest))
    assert "problem" not in records[0]
    assert all("outside the manifest's folder" in r["problem"] for r in records[1:])
    assert all("problem" not in r for r in discover(_cfg(manifest, follow_symlinks="all"))[:3])


def test_a_string_image_column_is_a_clear_row_error(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"image": ["photos/a.jpg"]}), path)
    record = discover(_cfg(path, image_column="image"))[0]
    row = _decode(record)
    assert row["status"] == "error" and "holds str, not image bytes" in row["reason"]


def test_config_reads_follow_symlinks_false_as_the_word():
    cfg = load_config(overrides=[parse_set("input.follow_symlinks=false")])
    assert cfg["input"]["follow_symlinks"] == "false" and cfg["decode"]["max_bytes"] == 1 << 30
    with pytest.raises(ConfigError, match="input.follow_symlinks"):
        load_config(overrides=[parse_set("input.follow_symlinks=sometimes")])
