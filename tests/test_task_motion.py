import math

import cv2
import numpy as np
import pytest
import skimage.data

from filters.motion_gate import motion_gate_results
from pipeline.core import config, models, sample_clip, schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import provenance
from pipeline.engine.stage_runner import run_stage
from stages.decode import DecodeLimits
from stages.decode_stage import DecodeStage
from stages.models.qwen2_5_vl import QwenVL
from stages.models.tiny import build_tiny
from stages.video import read_frames
from tasks import build_stages
from tasks.motion.describe import GAP_PX, MotionDescribeStage, read_motion_description
from tasks.motion.direction import (
    DIRECTION_EN,
    DIRECTION_ZH,
    classify_motion,
    direction_of,
)
from tasks.motion.recipe import TASK

W, H = sample_clip.SIZE
FRAMES = sample_clip.FPS * sample_clip.SECONDS


def _write(path, frames, fps=sample_clip.FPS):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)


def _ball_centre(index):
    """Where sample_clip draws the ball in frame `index`, in clip pixels."""
    t = index / (FRAMES - 1)
    return 40 + t * (W - 80), H - 40 - abs(math.sin(t * 2.5 * math.pi)) * 110


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    ball = str(sample_clip.render_clip(root / "ball.mp4"))
    frames = [f for _, f in read_frames(ball, list(range(FRAMES)))]
    wide = cv2.resize(skimage.data.grass(), (W + 4 * FRAMES, H))
    wide = np.stack([wide * 0.45, wide * 0.75 + 30, wide * 0.3], axis=2).astype(np.uint8)
    return {
        "ball": ball,
        "static": _write(root / "static.mp4", [frames[0]] * FRAMES),
        "short": _write(root / "short.mp4", frames[: sample_clip.FPS * 3 // 2]),  # 1.5 s
        "small": _write(root / "small.mp4", [cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in frames]),
        "pan": _write(root / "pan.mp4", [wide[:, 4 * i : 4 * i + W].copy() for i in range(FRAMES)]),  # 4 px a frame
    }


def _recipe(path, cfg, objects=None):
    record = {"key": "clip.mp4", "index": 0, "kind": "video", "path": path, "objects": objects}
    row = {
        "sample_id": "unit", "task": TASK, "status": schema.PENDING, "_unit": f"0:0:{TASK}", "_unit_rows": 1, "_shard": 0,
        "_input": schema.dumps(record),
    }
    rows = [DecodeStage(DecodeLimits(**cfg["decode"])).process_row(row)]
    for stage in build_stages(TASK, cfg):
        rows = run_stage(stage, rows)
    return rows


@pytest.fixture(scope="module")
def cpu_cfg():
    return config.load_config("cpu")


@pytest.fixture(scope="module")
def ball_rows(clips, cpu_cfg):
    return _recipe(clips["ball"], cpu_cfg)


def test_bundled_clip_gives_pairs_whose_edit_matches_the_known_motion(clips, ball_rows, cpu_cfg):
    ok = [r for r in ball_rows if r["status"] == schema.OK]
    assert len(ok) >= 3 and len({r["sample_id"] for r in ball_rows}) == len(ball_rows)
    frames = dict(read_frames(clips["ball"], list(range(FRAMES))))
    for row in ok:
        edit = schema.loads(row["edit"])
        a, b = edit["source_frame"], edit["target_frame"]
        assert a < b and edit["seconds_apart"] == pytest.approx((b - a) / sample_clip.FPS, abs=1e-3)
        sx = row["width"] / W
        (xa, ya), (xb, yb) = _ball_centre(a), _ball_centre(b)
        # the ball goes right: direction, shift and instructions all say so
        assert "right" in edit["direction"]
        assert edit["shift_px"][0] == pytest.approx((xb - xa) * sx, rel=0.2)
        if abs(yb - ya) > 20:  # a clear rise or fall is named as such
            assert ("up" in edit["direction"]) == (yb < ya)
            assert edit["kind"] == ("rise" if yb < ya else "fall")
        assert DIRECTION_EN[edit["direction"]] in row["instruction_en"] and "subject" in row["instruction_en"]
        assert DIRECTION_ZH[edit["direction"]] in row["instruction_zh"] and "主体" in row["instruction_zh"]
        # source is the earlier frame, target the later; the mask holds the ball in both
        source, target = decode_image(row["source_image"]["bytes"]), decode_image(row["target_image"]["bytes"])
        size = (row["width"], row["height"])
        assert np.abs(source.astype(int) - cv2.resize(frames[a], size, interpolation=cv2.INTER_AREA)).mean() < 1
        assert np.abs(target.astype(int) - cv2.resize(frames[b], size, interpolation=cv2.INTER_AREA)).mean() < 1
        mask = decode_mask(row["mask"]["bytes"])
        assert mask[int(ya), int(xa * sx)] and mask[int(yb), int(xb * sx)]
        assert mask.mean() < 0.15
        x, y, w, h = edit["box_xywh"]
        assert x <= xa * sx <= x + w and x <= xb * sx <= x + w
        assert edit["flow"]["method"] == "dis" and edit["flow"]["background_median_px"] < 0.5
        gates = schema.loads(row["scores"])["gates"]
        assert set(gates) == {"background_change", "camera_motion", "subject_motion", "mask_fraction", "frame_similarity"}


def test_an_annotated_subject_is_named(clips, cpu_cfg):
    x, y = _ball_centre(0)
    rows = _recipe(clips["ball"], cpu_cfg, objects=[{"label": "ball", "bbox": [x - 26, y - 26, 52, 52]}])
    row = next(r for r in rows if r["status"] == schema.OK)
    assert schema.loads(row["edit"])["object_source"] == "annotation"
    assert "ball" in row["instruction_en"] and "球" in row["instruction_zh"]


def test_a_static_clip_gives_no_pair(clips, cpu_cfg):
    [row] = _recipe(clips["static"], cpu_cfg)
    assert row["status"] == schema.SKIPPED and "nothing moves" in row["reason"]


@pytest.mark.parametrize("clip, reason", [("short", "shorter than 2 s"), ("small", "below 240p")])
def test_short_or_small_clips_are_skipped(clips, cpu_cfg, clip, reason):
    [row] = _recipe(clips[clip], cpu_cfg)
    assert row["status"] == schema.SKIPPED and reason in row["reason"]


def test_a_panning_clip_is_rejected_as_camera_motion(clips, cpu_cfg):
    rows = _recipe(clips["pan"], cpu_cfg)
    assert rows and all(r["status"] == schema.REJECTED for r in rows)
    for row in rows:
        assert schema.loads(row["scores"])["gates"]["camera_motion"]["passed"] is False
        edit = schema.loads(row["edit"])
        frames_apart = edit["target_frame"] - edit["source_frame"]
        # the view slides right, so the scene moves left by 4 px a frame (at the working width)
        assert edit["flow"]["camera_vector_px"][0] == pytest.approx(-4 * frames_apart * row["width"] / W, rel=0.15)


def test_gates_catch_a_scene_cut_and_a_subject_that_stays(ball_rows):
    row = next(r for r in ball_rows if r["status"] == schema.OK)
    source, target = decode_image(row["source_image"]["bytes"]), decode_image(row["target_image"]["bytes"])
    mask, edit = decode_mask(row["mask"]["bytes"]), schema.loads(row["edit"])
    limits = config.load_config("cpu")["tasks"][TASK]["gate"]
    other = cv2.resize(skimage.data.coffee(), (source.shape[1], source.shape[0]))
    cut = {g.name: g.passed for g in motion_gate_results(source, other, mask, edit, limits)}
    assert cut["frame_similarity"] is False and cut["background_change"] is False
    still = dict(edit, shift_px=[0.5, 0.0], flow=dict(edit["flow"], subject_vector_px=[0.2, 0.1]))
    assert {g.name: g.passed for g in motion_gate_results(source, target, mask, still, limits)}["subject_motion"] is False


def test_motion_kinds_and_directions():
    assert direction_of(10, 0) == "right" and direction_of(0, -10) == "up" and direction_of(-7, 7) == "down_left"
    assert classify_motion((30, -25), 1.0, 40, 1.5) == ("rise", "up_right")
    assert classify_motion((-30, 2), 1.0, 40, 1.5) == ("move", "left")
    assert classify_motion((3, 2), 2.0, 40, 1.5) == ("approach", None)
    assert classify_motion((3, 2), 0.5, 40, 1.5) == ("recede", None)
    assert classify_motion((60, 2), 2.0, 40, 1.5) == ("move", "right")  # a big shift is a move, whatever the size


def test_description_replies_are_checked_against_the_measured_motion():
    good = '{"subject": "ball", "instruction_en": "Move the ball to the right.", "instruction_zh": "把球向右移动。"}'
    assert read_motion_description(f"```json\n{good}\n```", "right").value["instruction_zh"] == "把球向右移动。"
    assert "names 'left'" in read_motion_description(good.replace("right", "left"), "right").reason
    assert "names 'left'" in read_motion_description(good.replace("向右", "向左"), "up_right").reason
    assert read_motion_description(good.replace("把球向右移动。", "Move it."), "right").reason == "instruction_zh has no Chinese"
    assert read_motion_description("The ball moves.", "right").reason == "no JSON object in the reply"


def test_a_usable_description_replaces_the_template(ball_rows):
    rows = [dict(r) for r in ball_rows if r["status"] == schema.OK][:2]
    for row in rows:
        row["status"] = schema.PENDING
    replies = iter(
        [
            '{"subject": "ball", "instruction_en": "Roll the ball further right.", "instruction_zh": "让球继续向右滚。"}',
            '{"subject": "ball", "instruction_en": "Move the ball to the left.", "instruction_zh": "把球向左移动。"}',
            "still wrong",
        ]
    )
    stage = MotionDescribeStage("scripted", tasks=(TASK,), generate=lambda images, prompts, n, t: [next(replies) for _ in prompts])
    first, second = run_stage(stage, rows)
    assert first["instruction_en"] == "Roll the ball further right."
    assert schema.loads(first["edit"])["object"] == "ball" and schema.loads(second["edit"])["object"] == "subject"
    assert provenance(first)["stages"][stage.name]["template_en"] == rows[0]["instruction_en"]
    assert second["instruction_en"] == rows[1]["instruction_en"]  # the contradicting reply was not used
    assert "kept the template instruction" in provenance(second)["fallbacks"][-1]["what"]


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    build_tiny(root, models.registry()["qwen2_5_vl"])
    return config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(root)}, "tasks": {TASK: {"max_pairs": 2}}}])


def test_tiny_recipe_shows_the_model_both_frames_and_falls_back_on_junk(clips, tiny_cfg, monkeypatch):
    calls = []
    original = QwenVL.generate

    def spy(self, images, prompts, *args, **kwargs):
        calls.append((list(images), list(prompts)))
        return original(self, images, prompts, *args, **kwargs)

    monkeypatch.setattr(QwenVL, "generate", spy)
    rows = _recipe(clips["ball"], tiny_cfg)
    candidates = [r for r in rows if r["status"] in (schema.OK, schema.REJECTED)]
    assert candidates and calls
    first_images, first_prompts = calls[0]
    assert len(first_images) == len(first_prompts) and "left frame first" in first_prompts[0]
    for row in candidates:
        source, target = decode_image(row["source_image"]["bytes"]), decode_image(row["target_image"]["bytes"])
        width = source.shape[1]
        composite = next(img for images, _ in calls for img in images if np.array_equal(img[:, :width], source))
        assert np.array_equal(composite[:, width + GAP_PX :], target)  # the later frame on the right
        prov = provenance(row)
        step = prov["stages"]["mllm_describe_motion"]
        assert step["instruction_source"] == "template" and step["attempts"] == 2
        assert any(f["stage"] == "mllm_describe_motion" and "kept the template instruction" in f["what"] for f in prov["fallbacks"])
        edit = schema.loads(row["edit"])
        assert DIRECTION_EN[edit["direction"]] in row["instruction_en"]
