from pipeline.cli.main import main
from pipeline.core import config
from pipeline.engine.gpu_plan import plan, stages_for


def test_stages_follow_the_tasks():
    assert stages_for(["color_alteration"]) == ["florence2", "sam2", "zoedepth", "controlnet_depth", "dinov2", "clip"]
    assert "flux_fill" in stages_for(["subject_remove"]) and "controlnet_canny" not in stages_for(["subject_remove"])


def test_default_gpu_plan_fits_eight_80gb_gpus():
    rows, problems = plan(config.load_config("gpu"), ["color_alteration", "subject_remove", "style_transfer"], 8, 80)
    assert problems == []
    fill = next(r for r in rows if r.family == "flux_fill")
    # 16.9B parameters in bf16 plus two images of activations, with the 1.2 margin
    assert fill.weights_gb == 33.8 and fill.need_gb == round((33.8 + 12.0) * 1.2, 1) and fill.have_gb == 80.0
    depth = next(r for r in rows if r.family == "controlnet_depth")
    assert depth.loads == ["sd3_5", "controlnet_depth"] and depth.weights_gb == 28.0


def test_small_gpus_are_refused_with_the_stage_named(capsys):
    assert main(["plan", "--task", "remove", "--gpu-mem", "24"]) == 2
    err = capsys.readouterr().err
    assert "flux_fill: needs 55.0 GB per actor" in err and "model_stages.flux_fill.num_gpus" in err


def test_too_few_gpus_for_the_pools_is_refused(capsys):
    assert main(["plan", "--task", "all", "--gpus-per-node", "2"]) == 2
    assert "the actor pools need 4.7 GPUs together, the cluster has 2" in capsys.readouterr().err
    assert main(["plan", "--task", "all", "--gpus-per-node", "2", "--nodes", "3"]) == 0
