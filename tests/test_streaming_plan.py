"""The plan is written as the input is listed: memory stays bounded whatever the input's size,
auto shard sizes match a full count, and a replan is identical."""

import tracemalloc
from itertools import islice

import pytest

from pipeline.core import config
from pipeline.core.run_dir import RunDir
from pipeline.engine import runner

KEYS = 100_000


@pytest.fixture(scope="module")
def many_keys(tmp_path_factory):
    """A manifest of 100,000 image URIs (made in a blink, where 100,000 files take from seconds
    to a minute on a busy disk; `bench/plan_streaming.py` lists a million files)."""
    path = tmp_path_factory.mktemp("keys") / "photos.csv"
    with open(path, "w") as handle:
        handle.write("uri,caption\n")
        handle.writelines(f"imgs/{i // 1000:03d}/{i:06d}.jpg,photo number {i}\n" for i in range(KEYS))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    for d in range(3):
        (root / f"{d:03d}").mkdir()
        for i in range(10):
            (root / f"{d:03d}" / f"{i:06d}.jpg").write_bytes(b"")
    return root


def _cfg(input_path, out, **sets):
    layers = [{"input": {"path": str(input_path)}, "run": {"out": str(out), "progress": False}}]
    layers += [config.parse_set(f"{k}={v}") for k, v in sets.items()]
    return config.load_config("cpu", overrides=layers)


def test_planning_100k_keys_holds_no_list_of_them(many_keys, tmp_path):
    run = RunDir(tmp_path / "run")
    tracemalloc.start()
    try:
        plan = runner._plan(run, _cfg(many_keys, run.root), log=lambda m: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert plan["inputs"] == KEYS and plan["shard_size"] == 16 and plan["shard_count"] == KEYS // 16
    # discover()'s list of these 100,000 records peaks at 40 MiB; the stream holds one plan
    # file's lines (4096)
    assert peak < 4 * 2**20, f"planning peaked at {peak / 2**20:.1f} MiB"
    # the counts, not a line per shard (6,250 of them were 170 kB)
    assert "shards" not in run.read_plan() and run.plan_file.stat().st_size < 500
    assert list(run.shards(plan))[-1] == (6249, 16) and sum(inputs for _, inputs in run.shards(plan)) == KEYS
    first = next(run.read_shard_inputs(0))
    assert first["key"] == "imgs/000/000000.jpg" and first["caption"] == "photo number 0" and first["index"] == 0
    last = list(run.read_shard_inputs(run.shard_count(plan) - 1))[-1]
    assert last["key"] == "imgs/099/099999.jpg" and last["index"] == KEYS - 1


def test_a_replan_writes_the_same_plan(folder, tmp_path):
    plans = []
    for name in ("a", "b"):
        run = RunDir(tmp_path / name)
        runner._plan(run, _cfg(folder, run.root, **{"run.shard_size": 4}), log=lambda m: None)
        plans.append([p.read_bytes() for p in sorted(run.plan_dir.glob("inputs-*.jsonl"))])
    assert plans[0] == plans[1] and len(plans[0]) == 4  # 30 inputs: 8 shards, in files of 1, 2, 4 and 1


@pytest.mark.parametrize("count", [0, 1, 63, 64, 65, 500, 960, 961, 962, 5000])
def test_auto_shard_size_from_the_first_records_equals_a_full_count(count):
    size, stream = runner.stream_shard_size(config.AUTO, iter(range(count)))
    assert size == runner.shard_size_for(config.AUTO, count)
    assert list(stream) == list(range(count))  # nothing lost or reordered by the look-ahead


def test_a_limit_stops_the_listing(folder, tmp_path):
    run = RunDir(tmp_path / "run")
    plan = runner._plan(run, _cfg(folder, run.root, **{"run.limit": 5, "run.shard_size": 2}), log=lambda m: None)
    assert plan["inputs"] == 5 and list(run.shards(plan)) == [(0, 2), (1, 2), (2, 1)]
    assert [r["key"] for s in range(3) for r in run.read_shard_inputs(s)] == [f"000/{i:06d}.jpg" for i in range(5)]


def test_local_walk_is_in_key_order(tmp_path):
    """Sibling files and folders interleave as their full keys sort, as an S3 listing does."""
    from fsspec.implementations.local import LocalFileSystem

    from pipeline.core.listing import iter_files

    for name in ["b.jpg", "a/x.jpg", "a-b.jpg", "a.jpg", "a/b/c.jpg", "ab.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    keys = [listed.key for listed in islice(iter_files(LocalFileSystem(), str(tmp_path)), 100)]
    assert keys == sorted(keys) == ["a-b.jpg", "a.jpg", "a/b/c.jpg", "a/x.jpg", "ab.jpg", "b.jpg"]


def test_plan_files_hold_whole_shards_the_first_ones_few_and_old_plans_still_read(tmp_path):
    run = RunDir(tmp_path / "run")
    records = [{"key": f"k{i}"} for i in range(15_000)]
    plan = run.write_plan(iter(records), 7, {"config_hash": "h"})
    assert plan["shards_per_file"] == 585
    # 1, 2, 4, ... 512 shards (so the first shards can run while a long listing goes on), then 585
    lines = [len(p.read_text().splitlines()) for p in sorted(run.plan_dir.glob("inputs-*.jsonl"))]
    assert lines == [7 * 2**n for n in range(10)] + [7 * 585, 15_000 - 7 * (1023 + 585)]  # the last file short
    assert [r["key"] for r in run.read_shard_inputs(3)] == [f"k{i}" for i in range(21, 28)]  # first shard of file 2
    assert [r["key"] for r in run.read_shard_inputs(1023)] == [f"k{i}" for i in range(7161, 7168)]  # first of the file after the small ones
    assert [r["index"] for r in run.read_shard_inputs(2142)] == list(range(14_994, 15_000))  # the short last shard
    assert run.listed_so_far() == 15_000
    run.plan_layout_file.unlink()  # a plan from before: one file per shard
    run.shard_inputs(0).write_text('{"key": "old", "index": 0}\n')
    assert [r["key"] for r in run.read_shard_inputs(0)] == ["old"]


@pytest.mark.parametrize("ramp", [True, False])  # False: a layout.json from before the small first files
@pytest.mark.parametrize("per_file", [1, 2, 3, 4, 5, 256, 585])
def test_every_shard_has_one_place_in_the_plan_files(per_file, ramp):
    from pipeline.core.plan_layout import file_of, file_shards, first_shard_of

    layout, shard = {"shards_per_file": per_file, "ramp": ramp}, 0
    for number in range(40):
        assert first_shard_of(layout, number) == shard
        assert [file_of(layout, shard + k) for k in range(file_shards(layout, number))] == [(number, k) for k in range(file_shards(layout, number))]
        shard += file_shards(layout, number)
    assert file_shards(layout, 39) == per_file
    assert file_shards(layout, 1) == (min(2, per_file) if ramp else per_file)


def test_a_plan_json_that_lists_its_shards_still_resumes(tmp_path, capsys):
    """plan.json of earlier versions lists every shard: a run they started resumes where it was."""
    import json

    from pipeline.cli.main import main
    from pipeline.engine.manifest import build_manifest
    from pipeline.engine.shard_writer import ShardWriter
    from tests.test_shard_writer import _row

    run = RunDir(tmp_path / "run")
    plan = run.write_plan(iter([{"key": f"k{i}"} for i in range(5)]), 2, {"config_hash": "h", "tasks": ["color"], "profile": "cpu"})
    old = {k: v for k, v in plan.items() if k != "shard_count"} | {"shards": [{"shard": 0, "inputs": 2}, {"shard": 1, "inputs": 2}, {"shard": 2, "inputs": 1}]}
    run.plan_file.write_text(json.dumps(old))
    ShardWriter(str(run.root), {1: 1}).add([_row(1, "1:0:c", "a", "ok")])
    plan = run.read_plan()
    assert run.shard_count(plan) == 3 and run.pending_shards(plan) == {0: 2, 2: 1}  # what the rerun runs
    assert build_manifest(run, plan)["pending_shards"] == [0, 2]
    assert main(["status", str(run.root)]) == 0
    assert "shards committed: 1/3" in capsys.readouterr().out
