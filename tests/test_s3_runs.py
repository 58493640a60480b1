"""Run folders and exports on an object store (the moto emulator on 127.0.0.1): a run from
s3:// to s3:// killed mid-run and resumed with every sample once; the commands that read a run
(status, select, report, export) on it; an export to s3:// that `datasets` loads; and a store
that fails mid-commit, after which the shard is pending and the rerun commits it once."""

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main
from pipeline.core.inputs import samples_dir
from pipeline.core.run_dir import RunDir, StoredFile
from pipeline.engine.runner import _remove_orphans
from pipeline.engine.shard_writer import ShardWriter
from tests.s3_emulator import DUMMY, free_port, isolated_env, moto_server

REPO = Path(__file__).resolve().parent.parent
# real photos, so the tone grades pass their gates and the selection keeps some
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "retina.jpg")
RUN = "s3://lab/run/"
ARGV = ["run", "--task", "tone", "--input", "s3://lab/in/", "--out", RUN, "--no-progress", "--license", "CC0-1.0",
        "--set", "run.shard_size=1", "--set", "decode.working_size=128", "--set", "run.report=false",
        "--set", "tasks.tone_transformation.grades_per_image=1", "--set", "tasks.tone_transformation.restorations_per_image=0"]


@pytest.fixture(scope="module")
def store():
    import s3fs

    with moto_server() as endpoint:
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key=DUMMY["AWS_ACCESS_KEY_ID"], secret=DUMMY["AWS_SECRET_ACCESS_KEY"],
                               skip_instance_cache=True, use_listings_cache=False)
        fs.mkdir("lab")
        for name in PHOTOS:
            fs.pipe(f"lab/in/{name}", (samples_dir() / name).read_bytes())
        yield endpoint, fs


@pytest.fixture
def s3_env(store, monkeypatch):
    for key, value in isolated_env(store[0]).items():
        monkeypatch.setenv(key, value)
    return store


def _records(fs, run="lab/run"):
    return [json.loads(fs.cat(p)) for p in sorted(fs.glob(f"{run}/stats/shards/shard-*.json"))]


@pytest.fixture(scope="module")
def resumed(store):
    """The run killed (SIGKILL to the driver and the Ray it started) once a shard has committed,
    a stale attempt planted beside a committed file, then the same command again."""
    endpoint, fs = store
    env = {**os.environ, **isolated_env(endpoint), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pipeline", *ARGV]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not fs.glob("lab/run/stats/shards/shard-*.json"):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = _records(fs)
    # an attempt that wrote its file and died before its record: the same rows under another name
    stale = None
    if at_kill:
        committed = at_kill[0]["files"][0]["path"]
        attempt = committed.rsplit("/", 1)[1].split(".")[1]
        stale = committed.replace(f".{attempt}.", ".0123456789ab.")
        fs.copy(f"lab/run/{committed}", f"lab/run/{stale}")
    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return {"at_kill": len(at_kill), "stale": stale, "rerun": rerun}


def test_a_killed_run_on_the_store_resumes_with_every_sample_once(resumed, store):
    _, fs = store
    assert 1 <= resumed["at_kill"] < len(PHOTOS), f"the kill should land mid-run; {resumed['at_kill']} of {len(PHOTOS)} shards were done"
    rerun = resumed["rerun"]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "file(s) of unfinished shard attempts" in rerun.stderr
    records = _records(fs)
    named = sorted(f["path"] for r in records for f in r["files"])
    on_store = sorted(p.split("/", 2)[2] for p in fs.find("lab/run/candidates") + fs.find("lab/run/errors"))
    assert on_store == named and resumed["stale"] not in on_store  # the stale attempt is gone
    assert all(len(p.rsplit("/", 1)[1].split(".")) == 3 for p in named)  # shard-NNNNN.<attempt>.parquet
    rows = [r for p in named for r in pq.read_table(fs.open(f"lab/run/{p}"), columns=["sample_id", "source_uri"]).to_pylist()]
    ids = [r["sample_id"] for r in rows]
    assert len(ids) == len(set(ids))  # none twice
    assert {r["source_uri"] for r in rows} == {f"s3://lab/in/{name}" for name in PHOTOS}  # none missing
    manifest = json.loads(fs.cat("lab/run/manifest.json"))
    assert manifest["complete"] and sum(manifest["rows"].values()) == len(rows)
    assert sorted(e["path"] for e in manifest["shards"]) == named
    assert fs.exists("lab/run/selection/done.json")  # the run finished on the store: its selection too
    secret = DUMMY["AWS_SECRET_ACCESS_KEY"].encode()
    assert not [p for p in fs.find("lab/run") if secret in fs.cat(p)]
    assert secret.decode() not in rerun.stderr + rerun.stdout


def test_status_select_report_and_export_read_the_run_on_the_store(resumed, s3_env, tmp_path, capsys, monkeypatch):
    import datasets

    _, fs = s3_env
    assert main(["status", RUN]) == 0
    out = capsys.readouterr().out
    assert f"shards committed: {len(PHOTOS)}/{len(PHOTOS)}  (complete)" in out
    assert main(["status", RUN, "--check"]) == 0 and f"{len(PHOTOS)} intact, 0 damaged" in capsys.readouterr().out
    assert main(["select", RUN]) == 0 and json.loads(capsys.readouterr().out)["skipped"]  # done.json and hq/ intact on the store
    assert main(["report", RUN]) == 0 and fs.exists("lab/run/report/index.html") and fs.find("lab/run/report/thumbs")
    assert main(["sheet", RUN, "--out", str(tmp_path / "sheet.png")]) == 0 and (tmp_path / "sheet.png").stat().st_size
    capsys.readouterr()

    assert main(["export", RUN, "--to", "s3://lab/exp/"]) == 0
    manifest = json.loads(fs.cat("lab/exp/export_manifest.json"))
    assert manifest["rows"] >= 1 and {f["path"] for f in manifest["files"]} == {p.split("/", 2)[2] for p in fs.find("lab/exp")} - {"export_manifest.json"}
    for entry in manifest["files"]:
        assert hashlib.sha256(fs.cat(f"lab/exp/{entry['path']}")).hexdigest() == entry["sha256"]
    assert "image-editing triplets" in fs.cat("lab/exp/README.md").decode()
    local = tmp_path / "exp"
    fs.get("lab/exp/data/", str(local) + "/", recursive=True)
    loaded = datasets.load_dataset("parquet", data_files=sorted(str(p) for p in local.glob("*.parquet")), split="train")
    assert loaded.num_rows == manifest["rows"] and loaded[0]["instruction_en"]
    # the run's own candidates, by the manifest's list of committed files
    run_manifest = json.loads(fs.cat("lab/run/manifest.json"))
    listed = [s["path"] for s in run_manifest["shards"] if s["path"].startswith("candidates/")]
    for path in listed:
        fs.get(f"lab/run/{path}", str(tmp_path / path))
    candidates = datasets.load_dataset("parquet", data_files=[str(tmp_path / p) for p in listed], split="train")
    assert candidates.num_rows == run_manifest["rows"]["ok"] + run_manifest["rows"]["rejected"]

    assert main(["export", RUN, "--to", "s3://lab/wds/", "--format", "webdataset"]) == 0
    tars = json.loads(fs.cat("lab/wds/export_manifest.json"))["files"]
    assert [f["path"] for f in tars if f["path"].endswith(".tar")] == ["data/train-000000.tar"]
    capsys.readouterr()
    # preference pairs read the candidates and the selection on the store too (this run has no rejected row: no pair)
    assert main(["export", RUN, "--to", "s3://lab/pref/", "--format", "preference"]) == 2
    assert "no preference pair" in capsys.readouterr().err

    for key in DUMMY:  # no credentials: one line and exit 2, as for inputs
        monkeypatch.delenv(key)
    assert main(["status", RUN]) == 2 and "no credentials found" in capsys.readouterr().err
    assert main(["export", RUN, "--to", "s3://lab/exp2/"]) == 2 and "no credentials found" in capsys.readouterr().err
    assert main(["run", "--task", "tone", "--out", "s3://lab/other/", "--no-progress"]) == 2
    assert "cannot reach s3://lab/other: no credentials found" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["s3", "local"])
def test_a_streamed_write_that_fails_leaves_no_file(where, s3_env, tmp_path):
    from pipeline.core.run_store import RunStore

    store = RunStore("s3://lab/streamed/" if where == "s3" else tmp_path)
    if where == "s3":
        store.fs.default_block_size = 5 * 2**20  # multipart: the first part is uploaded before the failure
    with pytest.raises(RuntimeError, match="reader died"):
        with store.open_for_writing("hq/shard-00000.parquet") as handle:
            handle.write(b"x" * (6 * 2**20))
            handle.flush()
            raise RuntimeError("reader died")
    assert store.walk() == []
    if where == "s3":  # the part already sent is aborted, not left pending
        assert not store.fs.call_s3("list_multipart_uploads", Bucket="lab").get("Uploads")
    with store.open_for_writing("hq/shard-00000.parquet") as handle:
        handle.write(b"whole")
    assert store.walk() == ["hq/shard-00000.parquet"] and store.read_bytes("hq/shard-00000.parquet") == b"whole"


def _row(shard, sid, status):
    from pipeline.core import schema

    img = schema.image_value(b"\x89PNG fake")
    return {"sample_id": sid, "task": "tone_transformation", "status": status, "_shard": shard, "_unit": f"{shard}:{sid}",
            "_unit_rows": 1, "source_image": img, "target_image": img, "mask": img, "provenance": "{}"}


@pytest.mark.parametrize("where", ["s3", "local"])
def test_a_store_that_fails_mid_commit_leaves_the_shard_pending_and_the_rerun_commits_it_once(where, s3_env, tmp_path, monkeypatch):
    run = RunDir(f"s3://lab/fail-{where}/" if where == "s3" else tmp_path / "run")
    run.write_plan([{"uri": "x"}, {"uri": "y"}], 2, {"config_hash": "h", "tasks": ["tone_transformation"], "profile": "cpu"})
    rows = [_row(0, "a", "ok"), _row(0, "b", "error")]
    real = {"s3": StoredFile.write_bytes, "local": os.replace}[where]
    calls = []

    def failing(*args):  # the second file of the commit (errors/) fails; the candidates file is written
        calls.append(args)
        if len(calls) == 2:
            raise OSError(errno.EIO, "connection reset by the store")
        return real(*args)

    monkeypatch.setattr(*((StoredFile, "write_bytes", failing) if where == "s3" else ("os.replace", failing)))
    with pytest.raises(OSError, match="connection reset"):
        ShardWriter(run, {0: 2}).add(rows)
    monkeypatch.undo()
    assert not run.is_committed(0) and run.committed_files("candidates") == []  # readers see nothing of it
    assert run.orphan_files()  # what the failed attempt left
    ShardWriter(run, {0: 2}).add(rows)  # the rerun
    _remove_orphans(run, log=lambda m: None)
    assert run.orphan_files() == []
    files = run.committed_files("candidates") + run.committed_files("errors")
    assert files == run.store.list("candidates") + run.store.list("errors")  # one file each, the committed one
    ids = [sid for rel in files for sid in pq.read_table(run.store.open(rel), columns=["sample_id"]).column(0).to_pylist()]
    assert sorted(ids) == ["a", "b"]


def test_status_reaches_a_store_run_by_its_io_settings_alone(store, monkeypatch, capsys):
    """`--set io.endpoint_url=...` instead of AWS_ENDPOINT_URL: a committed run written onto the
    emulator directly (no Ray), read by `status` with the endpoint given on the command line."""
    endpoint, _ = store
    for key, value in isolated_env(endpoint).items():
        monkeypatch.setenv(key, value)
    run = RunDir("s3://lab/io-flags/", {"endpoint_url": endpoint})
    run.write_plan([{"uri": "x"}, {"uri": "y"}, {"uri": "z"}], 2, {"config_hash": "h", "tasks": ["tone_transformation"], "profile": "cpu"})
    ShardWriter(run, {0: 2}).add([_row(0, "a", "ok"), _row(0, "b", "error")])
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # from here only the flag says where the store is
    assert main(["status", "s3://lab/io-flags/", "--set", f"io.endpoint_url={endpoint}", "--set", "io.retries=1"]) == 0
    assert "shards committed: 1/2  (incomplete" in capsys.readouterr().out
    closed = f"http://127.0.0.1:{free_port()}"  # the flag is what is used: an endpoint where nothing listens fails
    assert main(["status", "s3://lab/io-flags/", "--set", f"io.endpoint_url={closed}", "--set", "io.retries=1"]) == 2
    assert "cannot reach the store" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["status", "RUN"], ["report", "RUN"], ["sheet", "RUN", "--out", "s.png"],
                                  ["export", "RUN", "--to", "x"], ["select", "RUN"]])
def test_the_commands_that_read_a_run_take_only_io_settings(argv, capsys):
    assert main([*argv, "--set", "run.limit=3"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: --set run.limit: `{argv[0]}` takes only io.*{' and select.*' if argv[0] == 'select' else ''} keys"]
    assert main([*argv, "--set", "io.timeout_s=0"]) == 2  # checked as `run` checks it
    assert capsys.readouterr().err.strip() == "error: io.timeout_s: must be positive"


# the run's own driver, with its listing held after two records until a shard of the run is
# committed on the store (60 s at most): only a run that starts before the listing ends gets there
SLOWED_DRIVER = """
import sys, time
from pipeline.cli.main import main
from pipeline.core.run_dir import RunDir
from pipeline.engine import runner

real = runner.iter_records

def records(spec, io):
    for i, record in enumerate(real(spec, io)):
        if i == 2:
            run, deadline = RunDir(sys.argv[1]), time.monotonic() + 60
            while not run.committed_shards() and time.monotonic() < deadline:
                time.sleep(0.1)
        yield record

runner.iter_records = records
sys.exit(main(sys.argv[2:]))
"""


def test_a_run_on_the_store_starts_before_its_listing_ends(store):
    endpoint, fs = store
    out = "s3://lab/overlap/"
    argv = [a if a != RUN else out for a in ARGV]
    env = {**os.environ, **isolated_env(endpoint), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", SLOWED_DRIVER, out, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads(fs.cat("lab/overlap/stats/run.json"))
    assert stats["plan_overlapped"] and stats["first_commit_s"] <= stats["plan_done_s"]  # both rounded to 10 ms
    named = sorted(f["path"] for r in _records(fs, "lab/overlap") for f in r["files"])
    assert sorted(p.split("/", 2)[2] for p in fs.find("lab/overlap/candidates") + fs.find("lab/overlap/errors")) == named
    ids = [r["sample_id"] for p in named for r in pq.read_table(pa.BufferReader(fs.cat(f"lab/overlap/{p}")), columns=["sample_id"]).to_pylist()]
    manifest = json.loads(fs.cat("lab/overlap/manifest.json"))
    assert manifest["complete"] and len(ids) == len(set(ids)) == sum(manifest["rows"].values())
