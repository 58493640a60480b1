import importlib

import pytest

from pipeline import config, models
from pipeline.cli import main
from pipeline.model_stages import LOADS, STAGE_CONFIG
from pipeline.task_names import TASK_IDS

FAMILIES = {"florence2", "sam2", "siglip", "qwen2_5_vl", "zoedepth", "flux_fill", "sd3_5", "controlnet_depth", "controlnet_canny", "dinov2", "clip"}


def test_registry_names_every_seed_model_with_its_tasks_and_tiny_builder():
    entries = models.registry()
    assert set(entries) == FAMILIES
    for entry in entries.values():
        assert "/" in entry.ref and entry.params_b > 0 and entry.dtype == "bfloat16"
        assert entry.tasks and set(entry.tasks) <= set(TASK_IDS)
        assert callable(importlib.import_module(entry.tiny_module).build)
    assert {f for loads in LOADS.values() for f in loads} == FAMILIES
    assert set(STAGE_CONFIG) <= FAMILIES


def test_resolve_prefers_override_then_source(tmp_path):
    tiny = config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(tmp_path)}}])
    ref, revision = models.resolve(tiny, "controlnet_depth")
    assert ref == str(tmp_path / "sd3_controlnet" / "controlnet-depth") and revision is None
    gpu = config.load_config("gpu")
    assert models.resolve(gpu, "flux_fill")[0] == "black-forest-labs/FLUX.1-Fill-dev"
    local = config.load_config("gpu", overrides=[config.parse_set("models.ref.flux_fill=/models/fill")])
    assert models.resolve(local, "flux_fill") == ("/models/fill", None)


def test_models_check_tiny_loads_and_runs_every_model(tmp_path, capsys):
    assert main(["models", "check", "--profile", "tiny", "--set", f"models.tiny_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    for family in FAMILIES:
        assert any(line.startswith(family) and " ok " in line for line in out.splitlines()), (family, out)
    assert "11/11 models ok" in out
    # a second build is skipped: the twins are complete
    assert all(seconds == pytest.approx(0, abs=0.05) for _, seconds in (models.build_tiny(tmp_path, e) for e in models.registry().values()))


def test_models_check_reports_a_model_that_fails_to_load(tmp_path, capsys):
    code = main(["models", "check", "--profile", "tiny", "--set", f"models.tiny_dir={tmp_path}", "--set", f"models.ref.zoedepth={tmp_path / 'nothing'}"])
    assert code == 1
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("zoedepth")][0].split()[1] == "FAILED"
    assert "10/11 models ok" in out


def test_models_list_runs_offline(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "black-forest-labs/FLUX.1-Fill-dev" in out and out.count("\n") == 12
