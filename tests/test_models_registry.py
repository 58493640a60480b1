import importlib

import pytest

from pipeline.cli.main import main
from pipeline.cli.model_check import NON_STAGE_CHECKS
from pipeline.core import config, models
from pipeline.core.task_names import TASK_IDS
from pipeline.engine.gpu_plan import model_stage_classes
from stages.models.tiny import build_tiny

# what the pipeline's stages load, and what only `verify` runs
PIPELINE_FAMILIES = {"florence2", "sam2", "siglip", "qwen2_5_vl", "zoedepth", "flux_fill", "sd3_5", "controlnet_depth", "controlnet_canny", "dinov2", "clip"}
BASELINE_FAMILIES = {"flux_kontext"}
FAMILIES = PIPELINE_FAMILIES | BASELINE_FAMILIES


def test_registry_names_every_seed_model_with_its_tasks_and_tiny_builder():
    entries = models.registry()
    assert set(entries) == FAMILIES
    for entry in entries.values():
        assert "/" in entry.ref and entry.params_b > 0 and entry.dtype == "bfloat16"
        assert set(entry.tasks) <= set(TASK_IDS)
        # a pipeline model is there for its tasks; a verify baseline belongs to none
        assert bool(entry.tasks) == (entry.family in PIPELINE_FAMILIES), entry.family
        assert callable(importlib.import_module(entry.tiny_module).build)
    classes = model_stage_classes()
    assert {f for cls in classes.values() for f in cls.model.loads} == PIPELINE_FAMILIES
    assert set(classes) <= PIPELINE_FAMILIES
    assert all(family == cls.model.family for family, cls in classes.items())
    # `models check` reaches every family: through a stage, or through its own call
    assert set(NON_STAGE_CHECKS) == BASELINE_FAMILIES


def test_a_baseline_is_left_out_of_the_gpu_plan():
    from pipeline.engine.gpu_plan import stages_for

    assert not BASELINE_FAMILIES & set(stages_for(list(TASK_IDS)))


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
    assert "12/12 models ok" in out
    # a second build is skipped: the twins are complete
    assert all(seconds == pytest.approx(0, abs=0.05) for _, seconds in (build_tiny(tmp_path, e) for e in models.registry().values()))


def test_models_check_reports_a_model_that_fails_to_load(tmp_path, capsys):
    code = main(["models", "check", "--profile", "tiny", "--set", f"models.tiny_dir={tmp_path}", "--set", f"models.ref.zoedepth={tmp_path / 'nothing'}"])
    assert code == 1
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("zoedepth")][0].split()[1] == "FAILED"
    assert "11/12 models ok" in out


def test_models_list_runs_offline(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "black-forest-labs/FLUX.1-Fill-dev" in out and "black-forest-labs/FLUX.1-Kontext-dev" in out
    assert out.count("\n") == 1 + len(FAMILIES)  # a header, then one line per model


def test_a_baseline_that_fails_to_load_is_a_failed_result(tmp_path):
    from pipeline.cli.model_check import check_non_stage

    cfg = config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(tmp_path)}}])
    cfg["models"]["ref"]["flux_kontext"] = str(tmp_path / "nothing")  # no `--set` key for it in defaults.yaml
    result = check_non_stage("flux_kontext", cfg, 64)
    assert not result.ok and result.family == "flux_kontext" and result.detail
