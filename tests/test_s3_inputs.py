"""Inputs on an object store: the S3 emulator (moto, server mode, 127.0.0.1) holds a folder of
photos, an img2dataset shard with its damage and a Hugging Face style Parquet dataset under one
prefix; the pipeline lists it page by page, runs on it, and stops with exit code 2 before Ray
starts when the store cannot be reached or no credentials are found."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main
from pipeline.core import config
from pipeline.core.inputs import iter_records
from pipeline.core.run_dir import RunDir
from stages.read_input import read_input_bytes
from tests import input_makers as mk
from tests.s3_emulator import DUMMY, free_port, isolated_env, moto_server

REPO = Path(__file__).resolve().parent.parent
INPUT = "s3://photos/mixed/"
KEYS = [
    "hf/data/train-00000-of-00002.parquet#0", "hf/data/train-00000-of-00002.parquet#1",
    "hf/data/train-00001-of-00002.parquet#0", "hf/data/train-00001-of-00002.parquet#1",
    "images/photo_0.jpg", "images/photo_1.jpg", "images/photo_2.jpg",
    "shards/00000.tar/000000000.jpg", "shards/00000.tar/000000001.jpg", "shards/00000.tar/000000002.jpg",
    "shards/00000.tar/000000003", "shards/00000.tar/000000004.jpg", "shards/00000.tar/000000005.jpg",
]


@pytest.fixture(scope="module")
def store():
    import s3fs

    with moto_server() as endpoint:
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key=DUMMY["AWS_ACCESS_KEY_ID"], secret=DUMMY["AWS_SECRET_ACCESS_KEY"],
                               skip_instance_cache=True)
        fs.mkdir("photos")
        for i in range(3):
            fs.pipe(f"photos/mixed/images/photo_{i}.jpg", mk.jpeg(10 + i))
        fs.pipe("photos/mixed/shards/00000.tar", mk.img2dataset_tar())
        fs.pipe("photos/mixed/shards/00000.parquet", mk.img2dataset_meta())  # passed over: no image column
        fs.pipe("photos/mixed/hf/data/train-00000-of-00002.parquet", mk.hf_parquet(2, 100))
        fs.pipe("photos/mixed/hf/data/train-00001-of-00002.parquet", mk.hf_parquet(2, 200))
        yield endpoint


@pytest.fixture
def s3_env(store, monkeypatch):
    for key, value in isolated_env(store).items():
        monkeypatch.setenv(key, value)
    return store


def _input_cfg():
    return config.load_config("cpu", overrides=[{"input": {"path": INPUT}}])


def test_the_store_is_listed_page_by_page_and_read_by_range(s3_env, monkeypatch):
    from pipeline.core import listing

    monkeypatch.setattr(listing, "PAGE", 2)  # seven objects: four pages
    cfg = _input_cfg()
    records = list(iter_records(cfg["input"], cfg["io"]))
    assert [r["key"] for r in records] == KEYS
    by_key = {r["key"]: r for r in records}
    assert read_input_bytes(by_key["images/photo_1.jpg"]) == mk.jpeg(11)
    assert read_input_bytes(by_key["shards/00000.tar/000000005.jpg"]) == mk.jpeg(5)
    assert read_input_bytes(by_key["hf/data/train-00001-of-00002.parquet#1"]) == mk.jpeg(201)
    assert by_key["shards/00000.tar/000000000.jpg"]["uri"] == "s3://photos/mixed/shards/00000.tar#000000000.jpg"


def test_a_run_from_the_store_to_a_local_folder_and_its_rerun(s3_env, tmp_path, capsys):
    out = tmp_path / "run"
    # one grade per photo and no report: the reading is what is tested
    argv = ["run", "--task", "tone", "--input", INPUT, "--out", str(out), "--no-progress", "--set", "decode.working_size=128",
            "--set", "run.report=false", "--set", "tasks.tone_transformation.grades_per_image=1",
            "--set", "tasks.tone_transformation.restorations_per_image=0"]
    # its own embedded Ray, whose workers inherit the credentials from the environment
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "pipeline", *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["inputs"] == 13
    errors = pq.read_table(out / "errors").to_pylist()
    bad = {r["source_uri"].rsplit("#", 1)[1]: r["reason"] for r in errors if r["status"] == "error"}
    assert sorted(bad) == ["000000001.jpg", "000000003", "000000004.jpg"]
    assert bad["000000001.jpg"].startswith("decode: not a readable image")
    assert "has no image" in bad["000000003"] and "not valid metadata" in bad["000000004.jpg"]
    rows = pq.read_table(out / "candidates", columns=["status", "source_uri", "license", "provenance"]).to_pylist()
    assert manifest["rows"]["ok"] >= 1 and {r["source_uri"].split("/")[4] for r in rows} == {"hf", "images", "shards"}
    from_tar = next(r for r in rows if "00000.tar#000000000.jpg" in r["source_uri"])
    assert from_tar["license"] == "CC-BY-4.0"
    assert json.loads(from_tar["provenance"])["input"] == {
        "uri": "s3://photos/mixed/shards/00000.tar#000000000.jpg", "key": "shards/00000.tar/000000000.jpg",
        "caption": "a photo number 0", "url": "https://example.org/img/0.jpg", "license": "CC-BY-4.0",
    }
    plan = [p.read_bytes() for p in sorted((out / "plan").glob("inputs-*.jsonl"))]
    assert main(argv) == 0  # the rerun: every shard committed, so no Ray and no listing
    again = capsys.readouterr()
    assert "nothing to do" in again.out
    assert plan == [p.read_bytes() for p in sorted((out / "plan").glob("inputs-*.jsonl"))]
    secret = DUMMY["AWS_SECRET_ACCESS_KEY"].encode()
    for text in (done.stdout, done.stderr, again.out, again.err):
        assert secret.decode() not in text
    assert not [p for p in out.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if anything starts Ray."""
    from pipeline.engine import ray_runtime

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray_runtime, "init_ray", refuse)


def test_missing_credentials_exit_2_before_ray_naming_the_uri(s3_env, monkeypatch, no_ray, tmp_path, capsys):
    for key in DUMMY:
        monkeypatch.delenv(key)
    assert main(["run", "--task", "tone", "--input", INPUT, "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"cannot read {INPUT.rstrip('/')}" in err or f"cannot read {INPUT}" in err
    assert "no credentials found" in err and not (tmp_path / "r" / "plan").exists()


def test_an_unreachable_store_exits_2_before_ray_also_on_resume(s3_env, monkeypatch, no_ray, tmp_path, capsys):
    from pipeline.engine import runner

    out = tmp_path / "r"
    cfg = config.load_config("cpu", overrides=[{"input": {"path": INPUT}, "run": {"out": str(out), "tasks": ["tone_transformation"]}}])
    runner._plan(RunDir(out), cfg, log=lambda m: None)  # planned while the store was there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    for args in ([], ["--out", str(tmp_path / "fresh")]):  # the planned run, and a new one
        argv = ["run", "--task", "tone", "--input", INPUT, "--out", str(out), "--no-progress", "--set", "io.retries=1", *args]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "cannot reach the store for s3://photos/mixed" in err, err


def test_io_settings_take_store_options_but_never_credentials():
    from pipeline.core.filesystems import storage_options

    cfg = config.load_config("cpu", overrides=[config.parse_set("io.endpoint_url=http://127.0.0.1:9"),
                                               config.parse_set("io.options.s3.requester_pays=true")])
    opts = storage_options("s3", cfg["io"])
    assert opts["endpoint_url"] == "http://127.0.0.1:9" and opts["requester_pays"] is True
    assert opts["config_kwargs"]["retries"] == {"max_attempts": 3}
    assert config.identity_hash(cfg) == config.identity_hash(config.load_config("cpu"))  # how to reach it, not what it is
    for key in ("io.options.s3.secret=x", "io.options.s3.key=x", "io.options.gs.token=x"):
        with pytest.raises(config.ConfigError, match="credentials are not taken from the config"):
            config.load_config("cpu", overrides=[config.parse_set(key)])
