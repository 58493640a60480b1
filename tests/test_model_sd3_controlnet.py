"""SD3.5 ControlNet adapter: tiny random-weight base and ControlNets (depth, canny) through the
production loader; checks the conditioning the ControlNet gets, the paste-back and the seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core import schema
from pipeline.core.image_io import decode_image
from pipeline.core.rows import provenance
from pipeline.engine.stage_runner import run_stage
from stages.diffusion_common import row_seed
from stages.models.sd3_controlnet import (
    SD3CannyControlNetStage,
    SD3ControlNetStage,
    SD3DepthControlNetStage,
    canny_edges,
    render_depth,
)
from stages.models.tiny import sd3_controlnet as tiny_sd3
from stages.models.tiny import zoedepth as tiny_zoedepth
from stages.models.zoedepth import ZoeDepthStage, read_depth, store_depth
from tests.model_rows import pipeline_row, record_pipeline_calls, through_arrow
from tests.model_rows import run_through_arrow as _run

TASKS = ("material_modification", "style_transfer")


def _photo(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)], axis=2).astype(np.uint8)
    rgb[16:40, 20:44] = (230, 40, 40)  # a block with hard edges for Canny
    return rgb


def _depth_ramp(height: int, width: int, near: float = 1.0, far: float = 9.0) -> np.ndarray:
    return np.tile(np.linspace(near, far, width, dtype=np.float32), (height, 1))


def _row(index: int, rgb: np.ndarray, prompt: str, mask: np.ndarray | None = None, depth: np.ndarray | None = None, task: str = "material_modification") -> dict:
    sample_id = schema.sample_id("sha", f"img{index}.png", task, -1)
    row = pipeline_row(rgb, index, task, sample_id=sample_id, mask=mask, edit={"prompt": prompt, "material": "marble"})
    if depth is not None:
        store_depth(row, depth)
    return row


def _target(row: dict) -> np.ndarray:
    return decode_image(row["target_image"]["bytes"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_sd3.build(tmp_path_factory.mktemp("sd3"))


def _stage(folder, control: str, **overrides) -> SD3ControlNetStage:
    args = dict(tasks=TASKS, steps=2, guidance=5.0, resolution=64, max_sequence_length=32, feather_px=2)
    args.update(overrides)
    stage = SD3ControlNetStage(str(folder / tiny_sd3.BASE), str(folder / tiny_sd3.CONTROLNETS[control]), control, **args)
    stage.setup()
    return stage


@pytest.fixture(scope="module")
def depth_stage(folder):
    return _stage(folder, "depth")


@pytest.fixture(scope="module")
def canny_stage(folder):
    return _stage(folder, "canny")


def test_render_depth_is_near_black_far_white_grey_as_the_sd35_depth_controlnet_reads_it():
    """The SD3.5-Large depth ControlNet was trained on DepthFM's output, min-max normalised depth
    with far high (its reference control image: near rocks about 9/255, sky about 190). An SD 1.5
    style inverse-depth map (near white) hands it the scene inside out."""
    depth = np.array([[1.0, 2.0, 4.0], [8.0, np.nan, 0.0]], np.float32)
    rendered = render_depth(depth)
    assert rendered.shape == (2, 3, 3) and rendered.dtype == np.uint8
    assert (rendered[..., 0] == rendered[..., 2]).all()
    grey = rendered[..., 0]
    assert grey[0, 0] == 0 and grey[1, 0] == 255  # nearest black, farthest white
    assert grey[0, 0] < grey[0, 1] < grey[0, 2] < grey[1, 0]
    # linear in depth between the extremes, as DepthFM's per-sample min-max normalisation
    assert grey[0, 1] == round(255 * 1 / 7) and grey[0, 2] == round(255 * 3 / 7)
    assert grey[1, 1] == 255 and grey[1, 2] == 255  # invalid depth renders as far
    assert not render_depth(np.full((4, 4), 3.0)).any()


def test_the_registry_records_the_depth_control_convention():
    import yaml

    from pipeline.core.config import CONFIG_DIR

    entry = yaml.safe_load((CONFIG_DIR / "models.yaml").read_text())["controlnet_depth"]
    assert entry["control_image"].startswith("depth (not inverse), near black and far white")


def test_canny_edges_follow_the_block_outline():
    edges = canny_edges(_photo(64, 64), 100, 200)[..., 0]
    assert set(np.unique(edges)) == {0, 255}
    assert edges[16:40, 20].any() and not edges[26:30, 28:36].any()


def test_loads_both_controlnets_through_the_production_path(depth_stage, canny_stage):
    assert depth_stage.pipe.controlnet is not canny_stage.pipe.controlnet
    assert depth_stage.pipe.transformer.config.qk_norm == "rms_norm"
    assert depth_stage.uses_model


def test_canny_control_image_and_prompts_reach_the_pipeline(canny_stage, monkeypatch):
    calls = record_pipeline_calls(canny_stage.pipe, monkeypatch)
    rows = [_row(0, _photo(64, 64), "make it marble"), _row(1, np.ascontiguousarray(_photo(64, 64)[::-1]), "make it wood")]
    out = _run(canny_stage, rows)
    assert [c["prompt"] for c in calls] == [["make it marble"], ["make it wood"]]  # one call per row
    assert calls[0]["controlnet_conditioning_scale"] == canny_stage.conditioning_scale
    for (control,), row in zip([c["control_image"] for c in calls], rows):
        expected = canny_edges(decode_image(row["source_image"]["bytes"]), canny_stage.canny_low, canny_stage.canny_high)
        assert expected.any() and np.array_equal(np.asarray(control), expected)
        done = out[row["sample_id"]]
        assert _target(done).shape == (64, 64, 3)
        record = provenance(done)["stages"]["sd3_controlnet"]
        assert record["control"] == "canny" and record["seed"] == row_seed(row["sample_id"], canny_stage.base_seed)


def test_depth_control_image_is_the_rows_depth_rendering(depth_stage, monkeypatch):
    calls = record_pipeline_calls(depth_stage.pipe, monkeypatch)
    depth = _depth_ramp(64, 64)
    row = _row(0, _photo(64, 64), "make it marble", depth=depth)
    run_stage(depth_stage, through_arrow([row]))
    control = np.asarray(calls[0]["control_image"][0])
    assert np.array_equal(control, render_depth(read_depth(row)))
    assert control[0, 0, 0] == 0 and control[0, -1, 0] == 255  # the near left edge is black


def test_the_control_image_steers_the_result(depth_stage):
    rgb = _photo(64, 64)
    near_left = _run(depth_stage, [_row(0, rgb, "marble", depth=_depth_ramp(64, 64))])
    near_right = _run(depth_stage, [_row(0, rgb, "marble", depth=_depth_ramp(64, 64)[:, ::-1].copy())])
    (a,), (b,) = near_left.values(), near_right.values()
    assert not np.array_equal(_target(a), _target(b))


def test_mask_limits_the_change_and_no_mask_regenerates_everything(canny_stage):
    rgb = _photo(64, 64)
    mask = np.zeros((64, 64), np.uint8)
    mask[8:40, 8:40] = 255
    masked, whole = _row(0, rgb, "marble", mask=mask), _row(1, rgb, "marble")
    out = _run(canny_stage, [masked, whole])
    inside = mask > 127
    target = _target(out[masked["sample_id"]])
    assert np.array_equal(target[~inside], rgb[~inside])
    assert not np.array_equal(target[inside], rgb[inside])
    assert (_target(out[whole["sample_id"]]) != rgb).any(axis=2)[~inside].mean() > 0.5


def test_same_seed_repeats_and_another_seed_differs(canny_stage, folder):
    rows = [_row(0, _photo(64, 64), "marble"), _row(1, _photo(64, 64), "marble")]
    first = _run(canny_stage, rows)
    torch.manual_seed(12345)  # whatever ran before must not matter
    torch.rand(7)
    state = torch.get_rng_state()
    again = _run(canny_stage, rows)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is left as it was
    for sid in first:
        assert first[sid]["target_image"]["bytes"] == again[sid]["target_image"]["bytes"]
    assert first[rows[0]["sample_id"]]["target_image"]["bytes"] != first[rows[1]["sample_id"]]["target_image"]["bytes"]
    reseeded = _run(_stage(folder, "canny", base_seed=3), rows[:1])
    assert reseeded[rows[0]["sample_id"]]["target_image"]["bytes"] != first[rows[0]["sample_id"]]["target_image"]["bytes"]


def test_a_rows_picture_does_not_depend_on_the_rows_beside_it(canny_stage):
    rows = [_row(0, _photo(64, 64), "marble"), _row(1, np.ascontiguousarray(_photo(64, 64)[::-1]), "wood")]
    together = _run(canny_stage, rows)
    alone = _run(canny_stage, rows[1:])
    sid = rows[1]["sample_id"]
    assert together[sid]["target_image"]["bytes"] == alone[sid]["target_image"]["bytes"]


def test_depth_stage_output_feeds_the_depth_controlnet(depth_stage, tmp_path_factory):
    zoe = ZoeDepthStage(str(tiny_zoedepth.build(tmp_path_factory.mktemp("zoe"))), tasks=TASKS)
    zoe.setup()
    with_depth, without = _row(0, _photo(64, 64), "marble"), _row(1, _photo(64, 64), "marble")
    rows = run_stage(zoe, through_arrow([with_depth]))
    out = _run(depth_stage, rows + [without])
    assert out[with_depth["sample_id"]]["status"] == schema.PENDING
    assert _target(out[with_depth["sample_id"]]).shape == (64, 64, 3)
    assert out[without["sample_id"]]["status"] == schema.ERROR
    assert "no depth map" in out[without["sample_id"]]["reason"]


def test_gpu_profile_gives_each_controlnet_stage_a_whole_gpu_and_the_base():
    from pipeline.core.config import load_config, parse_set

    cfg = load_config("gpu")
    depth = SD3DepthControlNetStage.from_config(cfg, TASKS)  # sizes it; loads nothing
    canny = SD3CannyControlNetStage.from_config(cfg, TASKS)
    assert (depth.control, canny.control) == ("depth", "canny")
    assert depth.resources.num_gpus == canny.resources.num_gpus == 1
    # base + both ControlNets fit one 80 GB GPU: one key, from the base and the settings
    assert depth.loads == ("sd3_5", "controlnet_depth") and depth.share_key == canny.share_key
    for setting in ("model_stages.sd3_controlnet.share_base=false", "gpu.gpu_mem_gb=56"):  # off, or too small a GPU
        cfg = load_config("gpu", overrides=[parse_set(setting)])
        assert SD3DepthControlNetStage.from_config(cfg, TASKS).share_key != SD3CannyControlNetStage.from_config(cfg, TASKS).share_key


def test_a_run_with_both_controls_has_one_controlnet_stage_choosing_per_task():
    from pipeline.core.config import load_config, parse_set
    from pipeline.engine.stage_list import task_stages

    tasks = {"run": {"tasks": ["color_alteration", "style_transfer", "tone_transformation", "material_modification"]}}
    merged = [s for s in task_stages(load_config("gpu", overrides=[tasks])) if isinstance(s, SD3ControlNetStage)]
    assert len(merged) == 1
    (stage,) = merged
    assert stage.loads == ("sd3_5", "controlnet_depth", "controlnet_canny")  # the base once: plan and tiny twins see it
    assert set(stage.tasks) == set(tasks["run"]["tasks"]) and "blob.depth" in stage.reads
    assert stage.control_of_task == {"color_alteration": "depth", "material_modification": "depth", "style_transfer": "canny", "tone_transformation": "canny"}
    assert stage.family_of_task("style_transfer") == "controlnet_canny"
    apart = task_stages(load_config("gpu", overrides=[tasks, parse_set("model_stages.sd3_controlnet.share_base=false")]))
    assert sorted(s.control for s in apart if isinstance(s, SD3ControlNetStage)) == ["canny", "depth"]


def _untimed(value):
    """Provenance without the runner's wall-clock timings."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not k.endswith("seconds")}
    return value


@pytest.fixture(scope="module")
def shared_stage(folder):
    depth = SD3ControlNetStage(str(folder / tiny_sd3.BASE), str(folder / tiny_sd3.CONTROLNETS["depth"]), "depth", ("material_modification",), steps=2, guidance=5.0, resolution=64, max_sequence_length=32, feather_px=2)
    canny = SD3ControlNetStage(str(folder / tiny_sd3.BASE), str(folder / tiny_sd3.CONTROLNETS["canny"]), "canny", ("style_transfer",), steps=2, guidance=5.0, resolution=64, max_sequence_length=32, feather_px=2)
    stage = depth.merged_with(canny)
    stage.setup()
    return stage


def test_the_shared_actor_holds_the_base_once_and_both_controlnets(shared_stage):
    depth_pipe, canny_pipe = shared_stage.pipes["depth"], shared_stage.pipes["canny"]
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3", "scheduler"):
        assert getattr(depth_pipe, name) is getattr(canny_pipe, name), name
    assert depth_pipe.controlnet is not canny_pipe.controlnet
    # each ControlNet borrows the transformer's patch embedding, as a pipeline of its own would give it
    for pipe in (depth_pipe, canny_pipe):
        for key, value in pipe.transformer.pos_embed.state_dict().items():
            assert torch.equal(pipe.controlnet.pos_embed.state_dict()[key], value)


def test_rows_from_the_shared_actor_are_byte_identical_to_a_single_control_actors(shared_stage, depth_stage, canny_stage, monkeypatch):
    """Mixed rows, grouped by ControlNet: each row (target and provenance) is what the actor holding
    its ControlNet alone makes of it."""
    depth_rows = [_row(i, _photo(64, 64), f"marble {i}", depth=_depth_ramp(64, 64, 1.0 + i)) for i in range(2)]
    canny_rows = [_row(10 + i, np.ascontiguousarray(_photo(64, 64)[:, ::-1 if i else 1]), f"oil {i}", task="style_transfer") for i in range(2)]
    calls = record_pipeline_calls(shared_stage.pipe, monkeypatch)
    shared = _run(shared_stage, [depth_rows[0], canny_rows[0], depth_rows[1], canny_rows[1]])
    assert [c["prompt"] for c in calls] == [["marble 0"], ["marble 1"], ["oil 0"], ["oil 1"]]
    alone = {**_run(depth_stage, depth_rows), **_run(canny_stage, canny_rows)}
    assert set(shared) == set(alone)
    for sid, row in shared.items():
        assert row["status"] == schema.PENDING
        assert row["target_image"]["bytes"] == alone[sid]["target_image"]["bytes"]
        assert _untimed(provenance(row)) == _untimed(provenance(alone[sid]))  # which ControlNet made it, the same seed
    assert provenance(shared[canny_rows[0]["sample_id"]])["stages"]["sd3_controlnet"]["controlnet"].endswith("controlnet-canny")
    assert provenance(shared[depth_rows[0]["sample_id"]])["stages"]["sd3_controlnet"]["control"] == "depth"
