"""portrait_beautification: the cpu recipe finds the face, smooths its skin (less high-frequency
energy inside the skin mask) and changes nothing outside; the tiny recipe grounds "face" with
Florence-2 and gives Flux-Fill the skin mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from filters.portrait_gate import laplacian_variance, portrait_gate_results
from pipeline.core import config, models, schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import blob, provenance
from pipeline.engine.stage_runner import run_stage
from stages.diffusion_common import dilate, resize_mask
from stages.face_haar import box_iou, detect_faces, detect_features
from stages.lab_recolor import rgb_to_lab
from stages.models.florence2 import PHRASE_GROUNDING
from stages.models.tiny import ensure_tiny
from tasks import build_stages
from tasks.portrait.retouch import retouch, slim_region
from tasks.portrait.skin import skin_mask
from tests.model_rows import pipeline_row, record_pipeline_calls

TASK = "portrait_beautification"
ANNOTATED_FACE = [178, 62, 120, 112]  # the sample set's face box on the 512 px astronaut


def _astronaut(side: int = 512) -> np.ndarray:
    rgb = skimage.data.astronaut()
    return rgb if side == 512 else cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)


def _row(rgb: np.ndarray, index: int = 0, objects: list | None = None) -> dict:
    row = pipeline_row(rgb, index, TASK, sample_id=f"unit{index}", work={"objects": objects or []})
    row["source_sha256"] = f"{index:02d}" * 32
    return row


def _run(stages, rows):
    for stage in stages:
        rows = run_stage(stage, rows)
    return rows


@pytest.fixture(scope="module")
def cpu_cfg():
    return config.load_config("cpu")


@pytest.fixture(scope="module")
def face():
    rgb = _astronaut()
    box = detect_faces(rgb)[0]
    return {"bbox": box, **detect_features(rgb, box)}


def test_the_cascade_finds_the_astronauts_face_and_no_face_on_the_coffee(face):
    assert box_iou(face["bbox"], ANNOTATED_FACE) > 0.5
    assert len(face["eyes"]) == 2 and face["mouth"] is not None
    assert detect_faces(skimage.data.coffee()) == []


def test_skin_mask_holds_cheeks_and_neck_not_eyes_hair_or_background(face):
    mask = skin_mask(_astronaut(), face)
    x, y, w, h = face["bbox"]
    assert mask[int(y + 0.65 * h), int(x + 0.25 * w)] and mask[int(y + 0.65 * h), int(x + 0.75 * w)]  # cheeks
    assert mask[int(y + 1.2 * h), int(x + 0.5 * w)]  # neck
    for ex, ey, ew, eh in face["eyes"]:
        assert not mask[ey + eh // 2, ex + ew // 2]
    assert not mask[30, 230]  # the hair on top of the head
    assert not mask[:, :100].any() and not mask[400:].any()  # flag, suit


def test_retouch_smooths_and_brightens_the_skin_only(face, cpu_cfg):
    params = cpu_cfg["tasks"][TASK]["retouch"]
    rgb = _astronaut()
    skin = skin_mask(rgb, face)
    out = retouch(rgb, skin, face["bbox"], ["smooth", "brighten"], params)
    assert np.array_equal(out[~skin], rgb[~skin])
    assert laplacian_variance(out, skin) < 0.6 * laplacian_variance(rgb, skin)
    assert rgb_to_lab(out)[skin][:, 0].mean() > rgb_to_lab(rgb)[skin][:, 0].mean() + 1.5
    slimmed = retouch(rgb, skin, face["bbox"], ["smooth", "slim"], params)
    region = skin | slim_region(face["bbox"], rgb.shape, params["slim"])
    assert np.array_equal(slimmed[~region], rgb[~region])
    assert (slimmed[region & ~skin] != rgb[region & ~skin]).any()  # the warp moved the jaw line


def test_recipe_retouches_a_face_and_skips_a_photo_without_one(cpu_cfg):
    rgb = _astronaut(384)
    face_box = [v * 0.75 for v in ANNOTATED_FACE]
    coffee = cv2.resize(skimage.data.coffee(), (384, 256), interpolation=cv2.INTER_AREA)
    rows = _run(build_stages(TASK, cpu_cfg), [_row(rgb, 0, [{"label": "face", "bbox": face_box}]), _row(coffee, 1)])
    skipped = [r for r in rows if r["status"] == schema.SKIPPED]
    assert len(skipped) == 1 and "no face found" in skipped[0]["reason"]
    made = [r for r in rows if r["status"] != schema.SKIPPED]
    assert len(made) == cpu_cfg["tasks"][TASK]["recipes_per_face"] and len({r["sample_id"] for r in made}) == len(made)
    for row in made:
        assert row["status"] == schema.OK, row["reason"]
        edit = schema.loads(row["edit"])
        assert edit["face_source"] == "haar" and box_iou(edit["box_xywh"], face_box) > 0.5
        source, target = decode_image(row["source_image"]["bytes"]), decode_image(row["target_image"]["bytes"])
        mask, skin = decode_mask(row["mask"]["bytes"]), decode_mask(blob(row, "skin"))
        assert np.array_equal(target[~mask], source[~mask])  # nothing outside the face region changed
        assert laplacian_variance(target, skin) < 0.7 * laplacian_variance(source, skin)  # smoother skin
        assert max(box_iou(f, edit["box_xywh"]) for f in detect_faces(target, 0.04, 4)) > 0.5  # still a face
        assert row["instruction_en"] and row["instruction_zh"]
        assert ("smooth the skin" in row["instruction_en"].lower()) and "磨皮" in row["instruction_zh"]
        if "brighten" in edit["retouch"]:
            assert "brighten the face" in row["instruction_en"].lower() and "提亮肤色" in row["instruction_zh"]
        gates = schema.loads(row["scores"])["gates"]
        assert set(gates) == {"face_iou", "skin_detail_ratio", "inside_change", "inside_change_cap", "outside_change"}


def test_gate_rejects_noisier_skin_a_lost_face_and_a_leak(face, cpu_cfg):
    limits = cpu_cfg["tasks"][TASK]["gate"]
    rgb = _astronaut()
    skin = skin_mask(rgb, face)
    good = retouch(rgb, skin, face["bbox"], ["smooth", "brighten"], cpu_cfg["tasks"][TASK]["retouch"])
    verdict = lambda target, mask=skin: {g.name: g.passed for g in portrait_gate_results(rgb, target, mask, skin, face["bbox"], limits)}  # noqa: E731
    assert all(verdict(good).values())
    noisy = rgb.copy()
    noisy[skin] = np.clip(noisy[skin].astype(int) + np.random.default_rng(0).integers(-25, 25, noisy[skin].shape), 0, 255)
    assert not verdict(noisy)["skin_detail_ratio"]
    x, y, w, h = face["bbox"]
    faceless = good.copy()
    faceless[y : y + h, x : x + w] = np.median(rgb[skin], axis=0)
    box_mask = skin.copy()
    box_mask[y : y + h, x : x + w] = True
    assert not verdict(faceless, box_mask)["face_iou"]
    leaked = good.copy()
    leaked[450:] = 0
    assert not verdict(leaked)["outside_change"]


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    cfg = config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(tmp_path_factory.mktemp("twins"))}}])
    ensure_tiny(cfg, ["florence2", "flux_fill"], log=lambda message: None)
    return cfg


def test_tiny_recipe_grounds_face_and_refines_the_skin_mask_with_flux_fill(tiny_cfg, monkeypatch):
    stages = build_stages(TASK, tiny_cfg)
    names = [s.name for s in stages]
    assert names.index("florence2_grounding") < names.index("face_find") < names.index("flux_fill") < names.index("portrait_retouch")
    grounding = next(s for s in stages if s.name == "florence2_grounding")
    fill = next(s for s in stages if s.name == "flux_fill")
    for stage in (grounding, fill):
        stage.setup()
    asked = []
    original = grounding.generate
    monkeypatch.setattr(grounding, "generate", lambda images, prompts: asked.extend(prompts) or original(images, prompts))
    calls = record_pipeline_calls(fill.pipe, monkeypatch)
    # at the tiny working size no cascade fires: the annotated face box stands in
    rgb = _astronaut(128)
    rows = _run(stages, [_row(rgb, 0, [{"label": "face", "bbox": [v / 4 for v in ANNOTATED_FACE]}, {"label": "flag", "bbox": [0, 0, 24, 107]}])])
    assert asked == [PHRASE_GROUNDING + "face"]
    assert rows and all(r["status"] in (schema.OK, schema.REJECTED) for r in rows), [r.get("reason") for r in rows]
    sent = [np.asarray(m) > 127 for call in calls for m in call["mask_image"]]
    prompts = [p for call in calls for p in call["prompt"]]
    assert len(sent) == len(rows)
    for row in rows:
        edit = schema.loads(row["edit"])
        assert edit["face_source"] == "annotations"
        mask = decode_mask(row["mask"]["bytes"])
        size = (calls[0]["height"], calls[0]["width"])
        assert any(np.array_equal(m, resize_mask(dilate(mask, fill.mask_dilate_px), size)) for m in sent)
        assert edit["prompt"] in prompts and "skin" in edit["prompt"]
        record = provenance(row)["stages"]
        assert record["florence2_grounding"]["prompts"] == [PHRASE_GROUNDING + "face"]
        assert record["flux_fill"]["model"] == models.resolve(tiny_cfg, "flux_fill")[0]
        assert record["portrait_retouch"]["on"] == "flux_fill"
        source, target = decode_image(row["source_image"]["bytes"]), decode_image(row["target_image"]["bytes"])
        assert np.array_equal(target[~mask], source[~mask])
