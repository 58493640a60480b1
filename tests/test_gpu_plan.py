"""The pool plan (pipeline/engine/gpu_plan.py): pools sized from the cost table and the tasks'
traffic, what `plan` prints, `plan --calibrate` without a GPU, and `run --profile gpu`'s stage
list with the plan applied. Nothing is loaded."""

import pytest
import yaml

from pipeline.cli.main import main
from pipeline.core import config
from pipeline.core.task_names import TASK_IDS
from pipeline.engine.gpu_plan import auto_share, plan_pools, size_pools, stages_for
from pipeline.engine.stage_list import build_stage_list, describe

# the generators' pools as measured; the in-process captioner, an estimate that dwarfs them, has
# its own test (test_the_in_process_captioner_is_planned_as_a_pool)
SERVED_CAPTIONER = "captioner.backend=template"


def _cfg(tasks, *sets, profile="gpu"):
    sets = (SERVED_CAPTIONER, *sets)
    return config.load_config(profile, overrides=[{"run": {"tasks": list(tasks)}}, *(config.parse_set(s) for s in sets)])


def _plan(tasks=TASK_IDS, *sets):
    """The plan as `plan` makes it: the configured stages, sized by the plan."""
    cfg = _cfg(tasks, *sets)
    return plan_pools(build_stage_list(_cfg(tasks, *sets, "gpu.auto_pools=false")), cfg)


@pytest.fixture(scope="module")
def all_tasks_plan():
    return _plan()


def test_stages_follow_the_tasks():
    assert stages_for(["color_alteration"]) == ["florence2", "sam2", "zoedepth", "controlnet_depth", "dinov2", "clip"]
    assert "flux_fill" in stages_for(["subject_remove"]) and "controlnet_canny" not in stages_for(["subject_remove"])


def test_sizer_gives_the_most_work_the_most_gpus_and_fills_the_cluster():
    # a cost table of four pools: GPU-seconds per input of work and each actor's share
    shares, work = [1.0, 1.0, 0.25, 0.1], [90.0, 50.0, 1.0, 0.1]
    actors, packing = size_pools(shares, work, 8)
    gpus = [n * s for n, s in zip(actors, shares)]
    assert all(n >= 1 for n in actors)
    assert gpus[0] == max(gpus) and gpus[0] > gpus[1]  # the slowest pool gets the most
    assert 0.95 * 8 <= sum(gpus) <= 8
    # never more than one GPU's worth on a GPU
    assert len(packing) == 8 and all(sum(size for _, size in gpu) <= 1000 for gpu in packing)
    # too little room for one actor each
    assert size_pools([1.0, 1.0, 0.5], [1.0, 1.0, 1.0], 2) is None


def test_shares_follow_memory():
    assert auto_share(6.6, 80, 0.05, 0.25) == 0.1
    assert auto_share(29.5, 80, 0.05, 0.5) == 0.4
    assert auto_share(46.8, 80, 0.05, 1.0) == 1.0  # over half a GPU: the whole GPU
    assert auto_share(None, 80, 0.05, 0.3) == 0.3  # unknown weights: as configured


def test_gpu_profile_plan_fills_eight_80gb_gpus_and_feeds_the_bottleneck(all_tasks_plan):
    plan = all_tasks_plan
    assert plan.problems == [] and plan.auto
    assert 7.5 <= plan.held <= 8
    neck = plan.bottleneck
    assert neck.label == "flux_fill" and neck.gpus == max(p.gpus for p in plan.pools)
    for pool in plan.pools:
        assert pool.actors >= 1 and pool.fits and pool.need_gb <= pool.share * 80
    # the chosen tasks' traffic: Flux-Fill sees remove 4 + add 4 + replace 1 + background 3 + portrait 4 + text 2 rows per input
    fill = next(p for p in plan.pools if p.label == "flux_fill")
    assert fill.rows == 18 and fill.weights_gb == 33.8 and fill.need_gb == round((33.8 + 12.0) * 1.2, 1)
    # one pool holds SD3.5's base once and both ControlNets, bf16: (13.72B base with its text
    # encoders + 2 x 2.15B) x 2 bytes; it takes colour and material (10 rows) and style and tone (4)
    sd3 = [p for p in plan.pools if "sd3_5" in p.loads]
    assert [p.label for p in sd3] == ["sd3_controlnet"]
    assert sd3[0].loads == ("sd3_5", "controlnet_depth", "controlnet_canny") and sd3[0].weights_gb == 36.0 and sd3[0].rows == 14
    assert sd3[0].need_gb == round((36.04 + (5.0 + 0.5 + 0.5) * 2) * 1.2, 1) <= 80
    assert any("SD3.5's base" in note and "holds the base once" in note for note in plan.notes)


@pytest.mark.parametrize("setting", ["--gpu-mem=56", "model_stages.sd3_controlnet.share_base=false"])
def test_depth_and_canny_keep_a_base_each_where_one_actor_cannot_hold_both(setting):
    """56 GB holds base + one ControlNet (51.3 GB) but not base + both (57.6 GB): two pools."""
    plan = _plan(TASK_IDS, "gpu.gpu_mem_gb=56" if setting.startswith("--") else setting)
    depth = next(p for p in plan.pools if p.label == "sd3_controlnet:controlnet_depth")
    canny = next(p for p in plan.pools if p.label == "sd3_controlnet:controlnet_canny")
    assert depth.loads == ("sd3_5", "controlnet_depth") and depth.weights_gb == 31.7 and depth.rows == 10
    assert canny.loads == ("sd3_5", "controlnet_canny") and canny.rows == 4
    why = "would need 57.6 GB, a GPU has 56 GB" if setting.startswith("--") else "share_base is off"
    assert any("run in separate pools" in note and why in note for note in plan.notes)


def test_a_shared_pool_costs_each_tasks_rows_by_its_own_controlnet(tmp_path):
    table = yaml.safe_load((config.CONFIG_DIR / "stage_costs.yaml").read_text())
    table["stages"]["controlnet_canny"]["seconds_per_row"] = 2 * table["stages"]["controlnet_depth"]["seconds_per_row"]
    path = tmp_path / "costs.yaml"
    path.write_text(yaml.safe_dump(table))
    plan = _plan(["color_alteration", "style_transfer"], f"gpu.cost_table={path}")
    (pool,) = [p for p in plan.pools if "sd3_5" in p.loads]
    depth, canny = pool.seconds_by_task["color_alteration"], pool.seconds_by_task["style_transfer"]
    assert canny == pytest.approx(2 * depth) and pool.key == "controlnet_depth+controlnet_canny"
    # the pool's work is each task's rows at its own cost
    assert pool.work == pytest.approx(depth * pool.rows_by_task["color_alteration"] + canny * pool.rows_by_task["style_transfer"])
    assert plan.gpu_seconds_per_candidate("style_transfer") == pytest.approx(canny * pool.rows_by_task["style_transfer"] / plan.candidates["style_transfer"] + sum(
        (p.seconds_per_row or 0) * p.rows_by_task.get("style_transfer", 0) for p in plan.pools if p is not pool) / plan.candidates["style_transfer"])


def test_traffic_fans_out_after_the_proposal_step():
    plan = _plan(["color_alteration", "tone_transformation"])
    rows = {p.label: p.rows_by_task for p in plan.pools}
    assert rows["florence2_grounding"] == {"color_alteration": 1} and rows["zoedepth"] == {"color_alteration": 1}
    # 2 objects x 3 colours; of tone's 6 candidates only the scene changes reach the (shared)
    # ControlNet pool; the gates see all of them
    assert rows["sd3_controlnet"] == {"color_alteration": 6, "tone_transformation": 1}
    assert rows["dino_gate"] == {"color_alteration": 6, "tone_transformation": 6}
    assert plan.candidates_per_input == 12


def test_a_slower_stage_in_the_cost_table_takes_the_gpus(tmp_path):
    table = yaml.safe_load((config.CONFIG_DIR / "stage_costs.yaml").read_text())
    table["stages"]["controlnet_depth"]["seconds_per_row"] = 60.0
    path = tmp_path / "costs.yaml"
    path.write_text(yaml.safe_dump(table))
    plan = _plan(TASK_IDS, f"gpu.cost_table={path}")
    assert plan.bottleneck.label == "sd3_controlnet"
    assert plan.bottleneck.seconds_by_task["color_alteration"] == 60.0 and plan.bottleneck.seconds_by_task["style_transfer"] < 10
    assert plan.bottleneck.gpus == max(p.gpus for p in plan.pools)


def test_a_cluster_is_planned_as_a_whole():
    plan = _plan(TASK_IDS, "gpu.nodes=4")
    assert plan.total_gpus == 32 and plan.problems == []
    assert 0.95 * 32 <= plan.held <= 32
    assert plan.total_gpus - plan.held < plan.bottleneck.share  # no room left for another bottleneck actor
    heavy = sorted(plan.pools, key=lambda p: -p.work)[:2]  # Flux-Fill and SD3.5 hold the most
    assert sorted(p.gpus for p in heavy) == sorted(p.gpus for p in plan.pools)[-2:]
    assert plan.rate > 3.5 * _plan().rate


def test_printed_plan_has_throughput_bottleneck_and_idle_share(capsys):
    assert main(["plan", "--profile", "gpu", "--task", "all", "--set", SERVED_CAPTIONER]) == 0
    out = capsys.readouterr().out
    assert "8 GPU(s) of 80 GB" in out and "gpu.auto_pools" in out
    assert "expected candidates per hour:" in out
    assert "bottleneck: flux_fill" in out
    assert "idle GPU share:" in out
    assert "GPU-seconds per candidate" in out and "color_alteration" in out
    assert "GPUs held by the actor pools:" in out and "measured on NVIDIA H200" in out


def test_too_few_gpus_for_the_pools_is_refused(capsys):
    assert main(["plan", "--task", "all", "--gpus-per-node", "2"]) == 2
    assert "one actor per pool needs" in capsys.readouterr().err
    assert main(["plan", "--task", "all", "--gpus-per-node", "2", "--nodes", "3"]) == 0


def test_small_gpus_are_refused_with_the_stage_named(capsys):
    assert main(["plan", "--task", "remove", "--gpu-mem", "24"]) == 2
    err = capsys.readouterr().err
    assert "flux_fill: needs 55.0 GB per actor" in err and "model_stages.flux_fill.batch_size" in err


def test_configured_pools_without_auto_pools(capsys):
    plan = _plan(TASK_IDS, "gpu.auto_pools=false")
    assert all(p.actors == 1 for p in plan.pools)
    # every pool of the list, Florence-2 OCR and the second SigLIP pool too; one SD3.5 pool (5.7 with a pool per ControlNet)
    assert plan.held == pytest.approx(4.7)
    assert main(["plan", "--task", "all", "--gpus-per-node", "2", "--set", "gpu.auto_pools=false", "--set", SERVED_CAPTIONER]) == 2
    assert "the actor pools need 4.7 GPUs together, the cluster has 2" in capsys.readouterr().err


def test_calibrate_without_cuda_is_a_usage_error(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["plan", "--calibrate", "--task", "color"]) == 2
    err = capsys.readouterr().err
    assert "plan --calibrate times the model stages on a GPU" in err and "no CUDA device" in err


def test_run_stage_list_on_the_gpu_profile_carries_the_plan(all_tasks_plan):
    stages = describe(build_stage_list(_cfg(TASK_IDS)))
    pools = [r for r in stages if r["runs_as"] == "actor pool" and r["stage"] != "write_shards"]
    assert [(r["concurrency"], r["num_gpus"]) for r in pools] == [(p.actors, p.share) for p in all_tasks_plan.pools]
    fill = next(r for r in pools if r["stage"] == "flux_fill")
    assert fill["concurrency"] == 3 and fill["num_gpus"] == 1.0
    grounding = next(r for r in pools if r["stage"] == "florence2_grounding")
    assert grounding["num_gpus"] == 0.1 and grounding["concurrency"] >= 1
    # gpu.auto_pools off: the model_stages blocks as written
    fixed = describe(build_stage_list(_cfg(TASK_IDS, "gpu.auto_pools=false")))
    assert next(r for r in fixed if r["stage"] == "flux_fill")["concurrency"] == 1


def test_the_in_process_captioner_is_planned_as_a_pool():
    # the gpu profile's default: Qwen2.5-VL in process, one row per generate call (estimated cost)
    every = {"run": {"tasks": list(TASK_IDS)}}
    plan = plan_pools(build_stage_list(config.load_config("gpu", overrides=[every, {"gpu": {"auto_pools": False}}])), config.load_config("gpu", overrides=[every]))
    caption = next(p for p in plan.pools if p.label == "caption")
    assert caption.loads == ("qwen2_5_vl",) and caption.cost is not None and caption.cost.measured_on is None
    # the most GPUs; the one the shared SD3.5 pool frees lifts it past Flux-Fill (its bottleneck with a pool per ControlNet)
    assert plan.problems == [] and caption.gpus == max(p.gpus for p in plan.pools) and plan.bottleneck.label == "flux_fill"


def test_run_refuses_a_plan_that_does_not_fit():
    with pytest.raises(config.ConfigError, match="gpu.auto_pools: the pool plan does not fit"):
        build_stage_list(_cfg(TASK_IDS, "gpu.gpus_per_node=2"))


def test_other_profiles_keep_their_configured_pools():
    for profile in ("cpu", "tiny"):
        assert config.load_config(profile)["gpu"]["auto_pools"] is False
    assert config.load_config("gpu")["gpu"]["auto_pools"] is True
