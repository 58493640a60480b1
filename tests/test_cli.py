import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.main import main

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--task", "colour"], "unknown task 'colour'"),
        (["run", "--task", "color", "--set", "run.shard_sise=3"], "unknown key 'run.shard_sise'"),
        (["run", "--task", "color", "--set", "decode.working_size=100"], "decode.working_size: must be a multiple of 16"),
        (["run", "--task", "color", "--input", "/nonexistent/folder"], "input not found"),
        (["run", "--task", "color", "--profile", "nope"], "unknown profile 'nope'"),
    ],
)
def test_usage_and_config_errors_exit_2_with_a_message(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_help_everywhere():
    for argv in (["--help"], ["run", "--help"], ["tasks", "--help"], ["status", "--help"]):
        done = subprocess.run([sys.executable, "-m", "pipeline", *argv], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0 and "usage:" in done.stdout


def test_tasks_lists_all_eleven(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 12 and "color_alteration          color       cpu" in out


def test_status_of_a_missing_run_is_a_usage_error(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_run_then_status(ray_address, tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["run", "--task", "color", "--limit", "2", "--out", str(out), "--no-progress", "--set", "decode.working_size=128", "--set", "run.report=false"])
    assert code == 0
    assert not (out / "report").exists()  # the switch turns the end-of-run report off
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "index.html").exists()
    printed = capsys.readouterr().out
    assert "color_alteration" in printed and "candidates" in printed
    assert main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "shards committed: 2/2  (complete)" in status  # auto: one input per shard on a run this small


def test_a_run_that_cannot_be_placed_exits_1_and_says_why(ray_address, tmp_path, capsys):
    # a shard writer asking for more CPUs than the cluster has would wait for ever: refused up front
    code = main(["run", "--task", "color", "--limit", "1", "--out", str(tmp_path / "r"), "--no-progress", "--set", "ray.writer_cpus=64.0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "run failed:" in err and "the cluster has 2" in err


def test_a_task_without_a_recipe_module_is_a_usage_error(monkeypatch, tmp_path, capsys):
    import tasks

    monkeypatch.setitem(tasks.RECIPES, "material_modification", "tasks.not_written_yet")
    assert main(["run", "--task", "material", "--out", str(tmp_path / "r")]) == 2
    assert "task 'material_modification' is not implemented yet" in capsys.readouterr().err
    assert main(["tasks"]) == 0
    assert "material_modification     material    not implemented yet" in capsys.readouterr().out
