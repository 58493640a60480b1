"""Re-judging a finished run: a run whose judge refused every row (so nothing was selectable) is
judged again into the overlay, selection then picks rows, the committed shards keep their
bytes; an interrupted rejudge changes nothing until it is resumed and finished."""

import json
import socket

import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main
from pipeline.core.integrity import file_sha256
from pipeline.core.run_dir import RunDir
from pipeline.postrun import rejudge as rejudge_mod
from pipeline.postrun.judge_overlay import load_overlay
from tests.fake_judge_server import FakeJudgeServer


def _shard_hashes(run: RunDir) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(run.root.glob("*/shard-*.parquet")) if p.parent.name in ("candidates", "errors")}


def _selected(run: RunDir) -> dict[str, dict]:
    return {r["sample_id"]: r for r in pq.read_table(run.root / "selection" / "selection.parquet").to_pylist()}


@pytest.fixture(scope="module")
def refused_run(ray_address, tmp_path_factory):
    """Two shards judged by a server that refuses every call: every ok row is `unscored`."""
    out = tmp_path_factory.mktemp("rejudge") / "run"
    with FakeJudgeServer(default="refusal") as server:
        assert main([
            "run", "--task", "color", "--limit", "2", "--out", str(out), "--no-progress",
            "--judge-url", server.base_url, "--judge-model", "fake-judge",
            "--set", "decode.working_size=128", "--set", "run.shard_size=1", "--set", "run.report=false",
        ]) == 0
    run = RunDir(out)
    before = _selected(run)
    ok = [r for r in before.values() if r["status"] == "ok"]
    assert ok and all(r["judge_state"] == "unscored" and not r["selected"] for r in ok)  # nothing selectable
    return run, _shard_hashes(run)


def test_rejudge_makes_the_run_selectable_and_leaves_its_shards_alone(refused_run, capsys):
    run, hashes = refused_run
    with FakeJudgeServer(default="good:8,7") as server:
        assert main(["rejudge", str(run.root), "--judge-url", server.base_url, "--judge-model", "fake-judge"]) == 0
    summary = json.loads(capsys.readouterr().out)
    ok = [r for r in _selected(run).values() if r["status"] == "ok"]
    assert summary["rejudged"] == 2 and summary["selection"]["selected"] >= 1
    assert all(r["judge_state"] == "scored" and r["o"] == pytest.approx(7.0) for r in ok)
    assert any(r["selected"] for r in ok)
    assert _shard_hashes(run) == hashes  # the committed shards are byte for byte the same
    hq = pq.read_table(run.root / "hq").to_pylist()  # the kept rows carry the new judgements
    assert hq and all(json.loads(r["judge"])["overlay"] == summary["overlay"] for r in hq)
    assert all(json.loads(r["scores"])["viescore"]["o"] == pytest.approx(7.0) for r in hq)
    assert main(["status", str(run.root)]) == 0
    assert "judge overlay (openai fake-judge): 2/2 shards re-judged, in use" in capsys.readouterr().out
    # a second rejudge with the same judge has nothing left to do, and asks nothing
    with FakeJudgeServer(default="good:8,7") as server:
        assert main(["rejudge", str(run.root), "--judge-url", server.base_url, "--judge-model", "fake-judge"]) == 0
        assert not server.requests
    assert json.loads(capsys.readouterr().out)["already_done"] == 2


def test_an_interrupted_rejudge_resumes_at_the_next_shard(refused_run, monkeypatch, capsys):
    run, hashes = refused_run
    real, calls = rejudge_mod.judge_shard, []

    def dies_on_the_second_shard(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process killed between two shard commits
        return real(*args, **kwargs)

    monkeypatch.setattr(rejudge_mod, "judge_shard", dies_on_the_second_shard)
    with FakeJudgeServer(default="good:4,9", models=("judge-b",)) as server, pytest.raises(KeyboardInterrupt):
        main(["rejudge", str(run.root), "--judge-url", server.base_url, "--judge-model", "judge-b"])
    assert load_overlay(run).info["judge"]["model"] == "fake-judge"  # the finished overlay is still the one in use
    assert main(["select", str(run.root)]) == 0
    assert all(r["o"] == pytest.approx(7.0) for r in _selected(run).values() if r["status"] == "ok")
    capsys.readouterr()
    assert main(["status", str(run.root)]) == 0
    assert "judge overlay (openai judge-b): 1/2 shards re-judged, not in use" in capsys.readouterr().out

    monkeypatch.setattr(rejudge_mod, "judge_shard", real)
    with FakeJudgeServer(default="good:4,9", models=("judge-b",)) as server:
        assert main(["rejudge", str(run.root), "--judge-url", server.base_url, "--judge-model", "judge-b"]) == 0
        asked = {r["mark"] for r in server.requests}
    summary = json.loads(capsys.readouterr().out)
    assert summary["already_done"] == 1 and summary["rejudged"] == 1 and asked  # only the second shard was asked
    overlay = load_overlay(run)
    assert overlay.info["judge"]["model"] == "judge-b" and [d.name for d in (run.root / "overlays" / "judge").iterdir() if d.is_dir()] == [
        overlay.info["identity"]]  # in use now; the earlier judge's overlay is gone
    ids = [sid for path in sorted(run.candidates.glob("shard-*.parquet")) for sid in overlay.entries(path)]
    candidates = [sid for path in sorted(run.candidates.glob("shard-*.parquet")) for sid in pq.read_table(path).column("sample_id").to_pylist()]
    assert sorted(ids) == sorted(candidates) and len(set(ids)) == len(ids)  # each sample_id once
    assert all(r["o"] == pytest.approx(4.0) for r in _selected(run).values() if r["status"] == "ok")
    assert _shard_hashes(run) == hashes

    # judging another task again changes only its rows: these keep what the overlay in use says
    with FakeJudgeServer(default="good:1,1", models=("judge-b",)) as server:
        assert main(["rejudge", str(run.root), "--judge-url", server.base_url, "--judge-model", "judge-b", "--task", "tone"]) == 0
        assert not server.requests  # no tone rows in this run
    assert load_overlay(run).info["tasks"] == ["tone_transformation"]
    assert all(r["o"] == pytest.approx(4.0) for r in _selected(run).values() if r["status"] == "ok")


def test_rejudge_probes_first_stops_on_a_failing_judge_and_refuses_other_settings(refused_run, capsys):
    run, _ = refused_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    overlays = run.root / "overlays"
    before = sorted(str(p) for p in overlays.rglob("*"))
    assert main(["rejudge", str(run.root), "--judge-url", f"http://127.0.0.1:{port}/v1", "--judge-model", "m"]) == 2
    assert f"judge server at http://127.0.0.1:{port}/v1/models is unreachable" in capsys.readouterr().err
    assert sorted(str(p) for p in overlays.rglob("*")) == before  # nothing started
    assert main(["rejudge", str(run.root), "--set", "decode.working_size=64"]) == 2
    assert "rejudge changes only judge.* keys" in capsys.readouterr().err

    selected = _selected(run)
    with FakeJudgeServer(default="500", models=("judge-c",)) as server:
        assert main(["rejudge", str(run.root), "--judge-url", server.base_url, "--judge-model", "judge-c",
                     "--set", "judge.retries=0", "--set", "judge.max_consecutive_failures=1", "--set", "judge.concurrency=1"]) == 1
    err = capsys.readouterr().err
    assert "rejudge failed: circuit open: the judge server at http://127.0.0.1:" in err and "Traceback" not in err
    assert len(server.requests) == 1 and _selected(run) == selected  # stopped at once; the overlay in use is unchanged
