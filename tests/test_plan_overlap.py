"""The run starts on the first plan files while the listing goes on; a listing killed midway
resumes without losing or mixing anything; a changed input against an unfinished plan is refused."""

import hashlib
import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli.commands_run import _run_config
from pipeline.cli.main import build_parser, main
from pipeline.core import config
from pipeline.core.run_dir import RunDir
from pipeline.engine import runner

SETS = {"run.shard_size": 1, "decode.working_size": 128}


class Killed(Exception):
    """Stands for the driver dying while it lists."""


def _cfg(out: Path) -> dict:
    overrides = [{"run": {"out": str(out), "progress": False, "tasks": ["color_alteration"]}}]
    overrides += [config.parse_set(f"{k}={v}") for k, v in SETS.items()]
    return config.load_config("cpu", overrides=overrides)


def _rows(out: Path) -> dict[str, tuple]:
    """sample_id -> what the row says, over the files the completion records name; each id once."""
    rows = {}
    for rel in RunDir(out).committed_files("candidates") + RunDir(out).committed_files("errors"):
        for row in pq.read_table(out / rel, columns=["sample_id", "status", "target_image", "instruction_en"]).to_pylist():
            assert row["sample_id"] not in rows, f"{row['sample_id']} written twice"
            target = hashlib.sha256(row["target_image"]["bytes"]).hexdigest() if row["target_image"] else None
            rows[row["sample_id"]] = (row["status"], target, row["instruction_en"])
    return rows


def _commits(out: Path) -> list[Path]:
    return sorted((out / "stats" / "shards").glob("*.json"))


def _slowed_lister(out: Path, after: int, seen: dict, then_fail: bool = False):
    """The real listing, which stops after `after` records until a shard of the run is committed
    (60 s at most): a run that waits for the listing to end never gets there in time."""
    real = runner.iter_records

    def records(spec, io):
        for i, record in enumerate(real(spec, io)):
            if i == after:
                deadline = time.monotonic() + 60
                while not _commits(out) and time.monotonic() < deadline:
                    time.sleep(0.05)
                seen["committed_while_listing"] = bool(_commits(out))
                if then_fail:
                    raise Killed()
            yield record

    return records


@pytest.fixture(scope="module")
def plain_rows(ray_address, tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "run"
    result = runner.run_shards(_cfg(out), log=lambda m: None)
    assert not result.stats.get("plan_overlapped")  # listed before Ray was ready: one dataset over the whole plan
    return _rows(out)


def test_the_first_shard_commits_before_the_listing_ends(plain_rows, monkeypatch, tmp_path):
    out, seen = tmp_path / "run", {}
    monkeypatch.setattr(runner, "iter_records", _slowed_lister(out, 2, seen))
    result = runner.run_shards(_cfg(out), log=lambda m: None)
    assert seen["committed_while_listing"], "no shard committed while the listing waited: Ray started after it"
    stats = result.stats
    assert stats["plan_overlapped"] and stats["first_commit_s"] <= stats["plan_done_s"]  # both rounded to 10 ms
    assert result.manifest["complete"] and result.manifest["inputs"] == 6 and len(_commits(out)) == 6
    assert _rows(out) == plain_rows  # the same rows whether the plan overlapped the run or not


def test_a_listing_killed_midway_resumes_keeping_what_committed(plain_rows, monkeypatch, tmp_path):
    out, seen = tmp_path / "run", {}
    with monkeypatch.context() as patch:
        patch.setattr(runner, "iter_records", _slowed_lister(out, 2, seen, then_fail=True))
        with pytest.raises(Killed):
            runner.run_shards(_cfg(out), log=lambda m: None)
    run = RunDir(out)
    # the first plan files hold 1, 2, 4, ... shards: the listing stopped inside the second
    assert not run.has_plan() and run.plan_identity() is not None and run.listed_so_far() == 1
    committed = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in [*_commits(out), *out.glob("candidates/*"), *out.glob("errors/*")]}
    assert len(_commits(out)) == 1  # the one shard planned before the kill ran

    assert main(["status", str(out)]) == 0  # the unfinished plan: status says how far the listing got

    result = runner.run_shards(_cfg(out), log=lambda m: None)
    assert result.manifest["complete"] and result.manifest["inputs"] == 6
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in committed} == committed  # committed shards untouched
    assert _rows(out) == plain_rows  # every sample once, as a run that was never killed


def _partial_plan(argv: list[str], records: int) -> RunDir:
    """What a driver killed after listing `records` inputs leaves: identity.json, plan files, no plan.json."""
    cfg = _run_config(build_parser().parse_args(argv))

    def stop_after():
        stop_after.calls += 1
        if stop_after.calls > records:
            raise Killed()

    stop_after.calls = 0
    with pytest.raises(Killed):
        runner._list_into_plan(RunDir(cfg["run"]["out"]), cfg, keep_going=stop_after)
    return RunDir(cfg["run"]["out"])


def test_a_changed_input_or_other_settings_against_an_unfinished_plan_exit_2(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.jpg", "c.jpg", "d.jpg", "e.jpg"):
        (folder / name).write_bytes(b"")  # planning never opens a file
    argv = ["run", "--task", "color", "--input", str(folder), "--out", str(tmp_path / "run"), "--no-progress", "--set", "run.shard_size=1"]
    run = _partial_plan(argv, 3)  # plan files of 1 and 2 shards
    assert sorted(p.name for p in run.plan_dir.glob("inputs-*")) == ["inputs-00000.jsonl", "inputs-00001.jsonl"]
    plan_files = {p: p.read_bytes() for p in run.plan_dir.iterdir()}

    assert main(["status", str(run.root)]) == 0
    assert "planning: 3 inputs listed so far" in capsys.readouterr().out

    assert main([*argv[:-1], "run.shard_size=2"]) == 2
    assert "other settings" in capsys.readouterr().err

    (folder / "a.jpg").write_bytes(b"")  # sorts first: every planned shard would now hold another input
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the input changed since") and "inputs-00000.jsonl" in err and len(err.splitlines()) == 1
    assert {p: p.read_bytes() for p in run.plan_dir.iterdir()} == plan_files and not run.has_plan()
    assert json.loads(run.plan_layout_file.read_text()) == {"shard_size": 1, "shards_per_file": 4096, "ramp": True}
