"""verify, calibrate, review, review import and rejudge on a run on an object store (the moto
emulator on 127.0.0.1). The run is committed onto the emulator directly by the shard writer (a
plan, two committed shards, config.yaml, manifest.json; no Ray), with an uncommitted attempt's
file beside the shards whose row no reader may see. Each command reads through the run's store
and writes its outputs into the run there."""

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.cli.main import main
from pipeline.core import config as config_mod
from pipeline.core import schema
from pipeline.core.run_dir import RunDir
from pipeline.core.run_store import read_parquet
from pipeline.engine.shard_writer import ShardWriter
from tests.editor_rows import tone_rows
from tests.fake_judge_server import FakeJudgeServer
from tests.s3_emulator import DUMMY, free_port, isolated_env, moto_server

REPO = Path(__file__).resolve().parent.parent
RUN = "s3://lab/run/"
HASH = "cafe5eed0000s3"
GHOST = "ghost-uncommitted"  # the row of an attempt no completion record names
TONE = "tone_transformation"


def _gate(value: float) -> str:
    return schema.dumps({"gates": {"image_change": {"value": value, "threshold": 2.0, "direction": "at_least", "passed": value >= 2.0}}})


def _rows() -> list[dict]:
    """Eight tone rows of four photos; two of them rejected by the gate."""
    rows = tone_rows(4, size=32)
    for k, row in enumerate(rows):
        rejected = k in (1, 6)
        row.update(status="rejected" if rejected else "ok", reason="image_change 1 < 2" if rejected else None,
                   scores=_gate(1.0 if rejected else 3.0 + k))
    return rows


def _commit_run(fs) -> RunDir:
    run = RunDir(RUN)
    run.write_plan([{"uri": f"photo-{k}"} for k in range(4)], 2, {"config_hash": HASH, "tasks": [TONE], "profile": "cpu"})
    rows = _rows()
    for shard in (0, 1):
        part = [{**r, "_shard": shard, "_unit": f"{shard}:{r['sample_id']}", "_unit_rows": 1} for r in rows[4 * shard : 4 * shard + 4]]
        ShardWriter(run, {shard: 4}).add(part)
    cfg = config_mod.load_config("cpu", overrides=[{"run": {"report": False}}])
    run.store.write("config.yaml", config_mod.dump(cfg).encode())
    manifest = {"config_hash": HASH, "profile": "cpu", "complete": True, "tasks": {TONE: {"ok": 6, "rejected": 2}}}
    run.store.write("manifest.json", json.dumps(manifest).encode())
    # an attempt killed before its completion record: a file of a row that does not count
    ghost = {**rows[0], "sample_id": GHOST, "_shard": 0, "_unit": "0:ghost", "_unit_rows": 1}
    fs.pipe("lab/run/candidates/shard-00000.0123456789ab.parquet", _parquet([ghost]))
    return run


def _parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    pq.write_table(schema.to_output_table(rows), sink)
    return sink.getvalue().to_pybytes()


@pytest.fixture(scope="module")
def store():
    import s3fs

    with moto_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        for key, value in isolated_env(endpoint).items():
            mp.setenv(key, value)
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key=DUMMY["AWS_ACCESS_KEY_ID"], secret=DUMMY["AWS_SECRET_ACCESS_KEY"],
                               skip_instance_cache=True, use_listings_cache=False)
        fs.mkdir("lab")
        run = _commit_run(fs)
        yield endpoint, fs, run


def _committed_ids(run: RunDir) -> dict[str, str]:
    out = {}
    for rel in run.committed_files("candidates"):
        out.update((r["sample_id"], r["status"]) for r in read_parquet(run.store.file(rel), columns=["sample_id", "status"]).to_pylist())
    return out


def _verdict(sid: str, keep: bool = True) -> dict:
    return {"sample_id": sid, "run": HASH, "verdict": "keep" if keep else "reject", "score": None, "note": "",
            "task": TONE, "reviewer": "ann", "at": "2026-12-04T10:00:00Z"}


def _no_secret(*texts: str) -> None:
    assert all(DUMMY["AWS_SECRET_ACCESS_KEY"] not in text for text in texts)


def test_review_puts_its_page_in_the_run_and_each_verdict_puts_the_whole_file(store, capsys):
    """The command in its own process, the store reached by `--set io.endpoint_url` alone: the page
    goes into RUN/review/ on the store; a verdict POSTed to the server lands in the store's
    verdicts file beside the one given earlier (a store cannot append: the whole file is put)."""
    endpoint, fs, run = store
    earlier = next(sid for sid, status in _committed_ids(run).items() if status == "ok")
    fs.pipe("lab/run/review/verdicts.jsonl", (json.dumps(_verdict(earlier)) + "\n").encode())
    env = {**os.environ, **isolated_env(endpoint), "PYTHONPATH": str(REPO)}
    del env["AWS_ENDPOINT_URL"]  # only the flag says where the store is
    command = [sys.executable, "-m", "pipeline", "review", RUN, "--sample", "4", "--seed", "1", "--set", f"io.endpoint_url={endpoint}"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].startswith("s3://lab/run/review/index.html: 4 cards"), lines + [proc.stderr.read() if proc.poll() is not None else ""]
        url = lines[1].split()[2]
        assert url.startswith("http://127.0.0.1:") and "verdicts go to s3://lab/run/review/verdicts.jsonl" in lines[1]
        sample = json.loads(fs.cat("lab/run/review/sample.json"))["samples"]
        assert {s["status"] for s in sample} == {"ok", "rejected"} and GHOST not in {s["sample_id"] for s in sample}
        page = fs.cat("lab/run/review/index.html").decode()
        assert page.count("<section class='rv'") == 4 and all(fs.exists(f"lab/run/review/{s.split(chr(39))[0]}") for s in page.split("src='")[1:])
        shown = urllib.request.urlopen(url + "verdicts.jsonl", timeout=10).read().decode()
        assert earlier in shown  # the page shows the verdicts the store already had
        for entry, keep in ((sample[0], False), (sample[1], True)):
            body = json.dumps({**_verdict(entry["sample_id"], keep), "task": entry["task"]}).encode()
            request = urllib.request.Request(url + "verdicts", data=body, method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert json.loads(answer.read())["ok"]
            on_store = [json.loads(line)["sample_id"] for line in fs.cat("lab/run/review/verdicts.jsonl").decode().splitlines()]
            assert on_store[0] == earlier and on_store[-1] == entry["sample_id"]  # saved before the answer came
        assert len(on_store) == 3
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    _no_secret(out, err, *lines)


def test_a_verdict_the_store_does_not_take_is_an_error_answer_and_changes_nothing(store, tmp_path, monkeypatch):
    """The working copy changes only once the store has the whole file: a failed PUT leaves both."""
    import threading

    from pipeline.core.run_store import RunStore
    from pipeline.postrun.review_page import write_review_page
    from pipeline.postrun.review_server import ReviewServer

    _endpoint, fs, run = store
    write_review_page(RUN, 2, 1, folder=tmp_path)
    before = fs.cat("lab/run/review/verdicts.jsonl") if fs.exists("lab/run/review/verdicts.jsonl") else None
    server = ReviewServer(RUN, 0, tmp_path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    working = tmp_path / "verdicts.jsonl"
    kept = working.read_bytes() if working.exists() else None
    entry = json.loads(fs.cat("lab/run/review/sample.json"))["samples"][0]

    def unreachable(self, rel, data):
        raise OSError(5, "connection reset by the store")

    monkeypatch.setattr(RunStore, "write", unreachable)
    body = json.dumps({**_verdict(entry["sample_id"]), "task": entry["task"]}).encode()
    request = urllib.request.Request(server.url + "verdicts", data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert failed.value.code == 500 and "connection reset by the store" in json.loads(failed.value.read())["error"]
    assert (working.read_bytes() if working.exists() else None) == kept
    assert (fs.cat("lab/run/review/verdicts.jsonl") if fs.exists("lab/run/review/verdicts.jsonl") else None) == before


def test_review_import_and_calibrate_write_into_the_run_on_the_store(store, tmp_path, capsys):
    _endpoint, fs, run = store
    if fs.exists("lab/run/review/verdicts.jsonl"):  # the review test's
        fs.rm("lab/run/review/verdicts.jsonl")
    ids = _committed_ids(run)
    # a verdict on the uncommitted attempt's row is refused: that row is not the run's
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_verdict(GHOST)) + "\n")
    assert main(["review", "import", RUN, str(bad)]) == 1
    assert f"unknown sample_id {GHOST}" in capsys.readouterr().err and not fs.exists("lab/run/review/verdicts.jsonl")
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(_verdict(sid, status == "ok")) + "\n" for sid, status in ids.items()))
    assert main(["review", "import", RUN, str(good)]) == 0
    assert f"{len(ids)} new, 0 changed, 0 unchanged verdicts -> s3://lab/run/review/verdicts.jsonl" in capsys.readouterr().out
    assert fs.cat("lab/run/review/verdicts.jsonl") == good.read_bytes()

    assert main(["calibrate", RUN, "--min-verdicts", "2"]) == 0
    out = capsys.readouterr().out
    assert "wrote s3://lab/run/review/calibration.json and s3://lab/run/review/calibrated.yaml (copy it to a local file" in out
    result = json.loads(fs.cat("lab/run/review/calibration.json"))
    assert result["verdicts"]["total"] == len(ids) and result["tasks"][TONE]["verdicts"] == len(ids)
    assert result["verdicts"]["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    assert fs.cat("lab/run/review/calibrated.yaml").decode().startswith("# ")
    local = tmp_path / "layer.yaml"  # --out elsewhere: a local file --config takes
    assert main(["calibrate", RUN, "--min-verdicts", "2", "--out", str(local)]) == 0
    assert f"use it with --config {local}" in capsys.readouterr().out
    config_mod.load_config("cpu", [str(local)])
    assert yaml.safe_load(local.read_text()) == yaml.safe_load(fs.cat("lab/run/review/calibrated.yaml"))
    assert main(["calibrate", RUN, "--min-verdicts", "2", "--out", "s3://lab/layers/tone.yaml"]) == 0  # --out on a store
    capsys.readouterr()
    layer = fs.cat("lab/layers/tone.yaml").decode()
    assert layer.startswith("# ") and yaml.safe_load(layer) == yaml.safe_load(local.read_text())  # the header holds the time


def test_verify_reads_the_committed_rows_and_writes_run_verify_on_the_store(store, capsys):
    _endpoint, fs, run = store
    args = ["verify", RUN, "--steps", "4", "--size", "16", "--profile", "tiny", "--no-control", "--set", "editor.train.checkpoint_every=2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    metrics = json.loads(fs.cat("lab/run/verify/metrics.json"))
    assert metrics["data"]["triplets"] == 6  # the committed ok rows; not the uncommitted attempt's
    assert metrics["data"]["files"] == [f"s3://lab/run/{rel}" for rel in run.committed_files("candidates")]
    assert metrics["editor"]["checkpoints"] == "s3://lab/run/verify/checkpoints"  # the store's name, not a temporary folder's
    assert fs.exists("lab/run/verify/gallery.png") and fs.exists("lab/run/verify/checkpoints/editor/latest.safetensors")
    assert "wrote s3://lab/run/verify/metrics.json" in err and "verify-" not in err
    assert main(args) == 0  # a rerun resumes from the checkpoints on the store and trains nothing
    assert "resumed from" in capsys.readouterr().err
    assert main([*args, "--out", "s3://lab/verify-b/"]) == 0  # --out on a store: its own folder there, trained afresh
    assert "resumed from" not in capsys.readouterr().err
    assert json.loads(fs.cat("lab/verify-b/metrics.json"))["editor"]["checkpoints"] == "s3://lab/verify-b/checkpoints"
    assert fs.exists("lab/verify-b/checkpoints/editor/latest.safetensors")


def test_verify_reads_an_exported_dataset_on_the_store(store):
    from editor.data import DataError, load_triplets

    _endpoint, fs, _run = store
    fs.pipe("lab/exp/data/train-00000.parquet", _parquet(tone_rows(2, size=32)))
    loaded = load_triplets(RunDir("s3://lab/exp/"), "ok", 16)
    assert loaded.rows_kind == "dataset" and len(loaded.triplets) == 4
    fs.pipe("lab/wds/data/train-000000.tar", b"tar")
    with pytest.raises(DataError, match="s3://lab/wds is a WebDataset export"):
        load_triplets(RunDir("s3://lab/wds/"), "ok", 16)


def test_rejudge_writes_its_overlay_into_the_run_on_the_store_and_selects_again(store, capsys, monkeypatch):
    _endpoint, fs, run = store
    # selection hands its hashing to a Ray that is already up; the session's Ray (other tests')
    # started its workers before this emulator's credentials were set, so it is hidden here
    monkeypatch.setitem(sys.modules, "ray", None)
    shards = {p: fs.cat(p) for p in fs.find("lab/run/candidates")}
    with FakeJudgeServer(default="good:8,7") as server:
        assert main(["rejudge", RUN, "--judge-url", server.base_url, "--judge-model", "fake-judge"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["rejudged"] == 2 and first["selection"]["selected"] >= 1
    assert json.loads(fs.cat("lab/run/overlays/judge/active.json"))["identity"] == first["overlay"].rsplit("/", 1)[1]
    selected = pq.read_table(pa.BufferReader(fs.cat("lab/run/selection/selection.parquet"))).to_pylist()
    assert GHOST not in {r["sample_id"] for r in selected}
    assert all(r["judge_state"] == "scored" and r["o"] == pytest.approx(7.0) for r in selected if r["status"] == "ok")
    # another judge: its overlay becomes the one in use, and the first one's folder goes from the store
    with FakeJudgeServer(default="good:5,5", models=("judge-b",)) as server:
        assert main(["rejudge", RUN, "--judge-url", server.base_url, "--judge-model", "judge-b"]) == 0
    second = json.loads(capsys.readouterr().out)
    folders = {p.split("/")[4] for p in fs.find("lab/run/overlays/judge") if p.count("/") >= 5}
    assert folders == {second["overlay"].rsplit("/", 1)[1]}
    assert {p: fs.cat(p) for p in fs.find("lab/run/candidates")} == shards  # the shards are never rewritten
    secret = DUMMY["AWS_SECRET_ACCESS_KEY"].encode()
    assert not [p for p in fs.find("lab/run") if secret in fs.cat(p)]  # nor is a credential anywhere in the run


@pytest.mark.parametrize("argv", [["verify", RUN], ["calibrate", RUN], ["review", RUN, "--no-serve"], ["review", "import", RUN, "x.jsonl"],
                                  ["rejudge", RUN, "--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "m"]])
def test_no_credentials_or_no_store_is_one_line_naming_the_run(argv, store, monkeypatch, capsys):
    for key in DUMMY:
        monkeypatch.delenv(key)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "s3://lab/run" in err and "no credentials found" in err
    monkeypatch.undo()  # the credentials back: --set io.* is what reaches the store, and nothing listens there
    closed = f"http://127.0.0.1:{free_port()}"
    assert main([*argv, "--set", f"io.endpoint_url={closed}", "--set", "io.retries=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the store for s3://lab/run" in err


@pytest.mark.parametrize("argv", [["calibrate", RUN], ["review", RUN, "--no-serve"]])
def test_calibrate_and_review_take_only_io_settings(argv, capsys):
    assert main([*argv, "--set", "run.limit=3"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --set run.limit: `{argv[0]}` takes only io.* keys"
