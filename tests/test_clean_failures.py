"""Clean failures: a write that fails (disk full, permission denied, a vanished run folder)
leaves no temporary file and becomes one line naming the path and the cause."""

import errno
import json
import os

import pytest

from pipeline.core.run_dir import RunDir, atomic_write
from pipeline.engine.failures import describe, os_error_of
from pipeline.engine.shard_writer import ShardWriter


def _row(shard, sid):
    return {"sample_id": sid, "task": "color_alteration", "status": "error", "reason": "x", "_shard": shard,
            "_unit": f"{shard}:0:c", "_unit_rows": 1, "provenance": json.dumps({})}


@pytest.fixture
def disk_full(monkeypatch):
    def full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)


def test_atomic_write_on_a_full_disk_leaves_nothing(tmp_path, disk_full):
    target = tmp_path / "sub" / "file.json"
    with pytest.raises(OSError) as caught:
        atomic_write(target, b"{}")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert describe(caught.value) == f"{target}: No space left on device (errno 28)"
    assert not list(tmp_path.rglob("*.tmp")) and not target.exists()


def test_a_shard_that_cannot_be_written_is_not_committed(tmp_path, disk_full):
    writer = ShardWriter(str(tmp_path), {0: 1})
    with pytest.raises(OSError, match="errors/shard-00000.parquet"):
        writer.add([_row(0, "a")])
    assert not RunDir(tmp_path).is_committed(0) and not list(tmp_path.rglob("*.tmp"))


def test_a_vanished_run_folder_is_not_recreated(tmp_path):
    run = tmp_path / "run"
    writer = ShardWriter(str(run), {0: 1})  # the folder was deleted under the run
    with pytest.raises(FileNotFoundError, match="run folder is gone"):
        writer.add([_row(0, "a")])
    assert not run.exists()


def test_the_os_error_is_found_inside_ray_s_wrappers():
    class Wrapped(Exception):
        def __init__(self, cause):
            super().__init__("task failed")
            self.cause = cause

    inner = OSError(errno.EACCES, "Permission denied", "/runs/x/candidates/shard-00001.parquet")
    outer = RuntimeError("dataset failed")
    outer.__cause__ = Wrapped(inner)
    assert os_error_of(outer) is inner and os_error_of(RuntimeError("x")) is None
