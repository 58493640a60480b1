"""The run's stage list: one builder, printed by `python -m pipeline stages`."""

import json

from pipeline.cli.main import main
from pipeline.core import config, schema
from pipeline.engine.stage_list import (
    SplitByTask,
    WriteShards,
    build_stage_list,
    describe,
)


def _cfg(profile: str, tasks: list[str]) -> dict:
    return config.load_config(profile, overrides=[{"run": {"tasks": tasks}}])


def test_the_list_runs_decode_split_recipes_gates_captioner_judge_png_writer_in_order():
    stages = build_stage_list(_cfg("cpu", ["color_alteration", "tone_transformation"]))
    names = [s.name for s in stages]
    assert names[:2] == ["decode", "split_by_task"] and names[-5:] == ["common_gates", "caption", "judge", "png_encode", "write_shards"]
    assert {"color_gate", "tone_gate"} <= set(names)
    assert names.index("color_propose") < names.index("color_gate") < names.index("common_gates")
    assert isinstance(stages[1], SplitByTask) and isinstance(stages[-1], WriteShards)


def test_split_makes_one_unit_per_task_and_skips_the_wrong_kind_of_input():
    rows = [{"_input": schema.dumps({"index": 3, "key": "a.mp4", "kind": "video"}), "_shard": 0, "status": schema.PENDING, "source_sha256": "ab"}]
    units = SplitByTask(["motion_change", "color_alteration"]).process_batch(rows)
    assert [u["_unit"] for u in units] == ["0:3:motion_change", "0:3:color_alteration"]
    assert [u["status"] for u in units] == [schema.PENDING, schema.SKIPPED]
    assert "takes still images" in units[1]["reason"]


def test_stages_command_prints_every_stage_cpu(capsys):
    assert main(["stages", "--task", "all", "--profile", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("profile cpu, 11 of 11 tasks")
    body = out[2:]
    assert body[0].split()[1] == "decode" and body[-1].split()[1] == "write_shards"
    for gate in ("color_gate", "remove_gate", "add_gate", "text_gate", "motion_gate", "style_gate"):
        assert any(line.split()[1] == gate for line in body), gate
    assert not any("actor pool" in line for line in body[:-1])  # no model on cpu


def test_stages_command_tiny_shows_shared_model_pools(capsys):
    assert main(["stages", "--task", "color,remove", "--profile", "tiny", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    florence = [r for r in rows if r["stage"] == "florence2_grounding"]
    assert len(florence) == 1 and florence[0]["tasks"] == ["color_alteration", "subject_remove"]
    assert florence[0]["runs_as"] == "actor pool" and florence[0]["loads"] == ["florence2"]
    controlnet = next(r for r in rows if r["stage"] == "sd3_controlnet")
    assert controlnet["loads"] == ["sd3_5", "controlnet_depth"]
    assert {"dino_gate", "clip_gate"} <= {r["stage"] for r in rows}


def test_model_stage_resources_come_from_the_config():
    cfg = _cfg("tiny", ["color_alteration"])
    cfg["model_stages"]["zoedepth"].update(batch_size=5, num_gpus=0.5, concurrency=3)
    zoe = next(r for r in describe(build_stage_list(cfg)) if r["stage"] == "zoedepth")
    assert (zoe["batch_size"], zoe["num_gpus"], zoe["concurrency"]) == (5, 0.5, 3)


def test_stages_command_refuses_an_unknown_task(capsys):
    assert main(["stages", "--task", "nope"]) == 2
    assert "unknown task" in capsys.readouterr().err
