"""subject_remove and subject_add: the cpu recipes end to end without Ray on a picture whose
background is known, the swap that makes an addition out of a removal, the size limit, the gates,
and on the tiny path what Flux-Fill is asked to do."""

import numpy as np
import pytest

from filters.remove_gate import AddGateStage, RemoveGateStage, removal_gate_results
from pipeline.core import config, schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import blob, provenance
from pipeline.engine.stage_runner import run_stage
from stages.candidates import box_mask
from stages.diffusion_common import dilate
from stages.models.flux_fill import FluxFillStage
from stages.models.tiny import ensure_tiny
from tasks import build_stages
from tasks.add import recipe as add_task
from tasks.remove import recipe as remove_task
from tests.model_rows import pipeline_row, record_pipeline_calls

CUP = {"label": "cup", "bbox": [150, 60, 40, 40]}  # a disc, about 4% of the picture
SUITCASE = {"label": "suitcase", "bbox": [20, 100, 120, 90]}  # a slab, about 28%: over the cpu limit


def _background(height: int = 200, width: int = 200) -> np.ndarray:
    """Smooth ramps: what lies behind the objects is easy to infer, so a good fill is checkable."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([60 + xx * 100 // width, 90 + yy * 80 // height, np.full_like(xx, 150)], axis=2).astype(np.uint8)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    clean = _background()
    rgb = clean.copy()
    yy, xx = np.mgrid[0:200, 0:200]
    rgb[(yy - 80) ** 2 + (xx - 170) ** 2 <= 17**2] = (230, 40, 30)  # the cup: a red disc inside its box
    rgb[108:182, 28:132] = (20, 20, 20)  # the suitcase
    return rgb, clean


def _row(rgb: np.ndarray, task: str, objects: list[dict]) -> dict:
    row = pipeline_row(rgb, 0, task, work={"objects": [dict(o) for o in objects]})
    row["source_sha256"] = "cd" * 32
    return row


def _run(task: str, rgb: np.ndarray, cfg: dict, objects=(CUP, SUITCASE)) -> dict[str, dict]:
    rows = [_row(rgb, task, list(objects))]
    for stage in build_stages(task, cfg):
        rows = run_stage(stage, rows)
    return {schema.loads(r["edit"])["object"]: r for r in rows}


@pytest.fixture(scope="module")
def cpu_cfg():
    return config.load_config("cpu")


@pytest.fixture(scope="module")
def removed(cpu_cfg):
    return _run(remove_task.TASK, _scene()[0], cpu_cfg)


def test_removal_fills_the_mask_with_background_and_leaves_the_rest(removed):
    rgb, clean = _scene()
    row = removed["cup"]
    assert row["status"] == schema.OK, row["reason"]
    target = decode_image(row["target_image"]["bytes"])
    mask = decode_mask(row["mask"]["bytes"])
    disc = np.all(rgb == (230, 40, 30), axis=2)
    edit = schema.loads(row["edit"])
    assert mask[dilate(disc, edit["mask_dilate_px"])].all()  # the whole cup, grown past its edge
    assert np.array_equal(target[~mask], rgb[~mask])
    # the red is gone and what replaced it is close to the true background behind it
    assert np.abs(target[disc].astype(int) - rgb[disc]).mean() > 60
    assert np.abs(target[disc].astype(int) - clean[disc]).mean() < 8
    assert "cup" in row["instruction_en"] and "杯子" in row["instruction_zh"]
    assert edit["type"] == "subject_remove" and edit["box_xywh"] == CUP["bbox"]
    assert set(schema.loads(row["scores"])["gates"]) == {"outside_change", "inside_change", "colour_toward_ring", "edge_density_excess"}


def test_an_object_over_the_size_limit_is_skipped_with_the_reason(removed, cpu_cfg):
    row = removed["suitcase"]
    limit = cpu_cfg["tasks"]["subject_remove"]["cpu_inpaint"]["max_area_fraction"]
    assert row["status"] == schema.SKIPPED and row.get("target_image") is None
    assert "opencv_inpaint" in row["reason"] and f"up to {limit:.0%}" in row["reason"]
    assert {r["_unit_rows"] for r in removed.values()} == {2}
    # the limit is a setting: raised, the same object is filled
    raised = config.load_config("cpu", overrides=[{"tasks": {"subject_remove": {"cpu_inpaint": {"max_area_fraction": 0.5}}}}])
    again = _run(remove_task.TASK, _scene()[0], raised, objects=(SUITCASE,))["suitcase"]
    assert again["status"] in (schema.OK, schema.REJECTED) and again["target_image"] is not None


def test_addition_is_the_removal_swapped_exactly(removed, cpu_cfg):
    rgb, _ = _scene()
    added = _run(add_task.TASK, rgb, cpu_cfg)
    row = added["cup"]
    assert row["status"] == schema.OK, row["reason"]
    assert np.array_equal(decode_image(row["source_image"]["bytes"]), decode_image(removed["cup"]["target_image"]["bytes"]))
    assert np.array_equal(decode_image(row["target_image"]["bytes"]), rgb)
    assert row["mask"]["bytes"] == removed["cup"]["mask"]["bytes"]
    assert row["sample_id"] != removed["cup"]["sample_id"]
    # the cup sits in the right middle ninth of the frame, just right of the suitcase
    edit = schema.loads(row["edit"])
    assert edit["type"] == "subject_add" and edit["placement"]["frame"] == ["right", "middle"]
    assert (edit["placement"]["relation"], edit["placement"]["detail"], edit["placement"]["reference"]) == ("side", "right", "suitcase")
    assert edit["slots_en"]["where"] == "to the right of the suitcase" and edit["slots_zh"]["where"] == "行李箱右边"
    assert "cup" in row["instruction_en"] and row["instruction_en"].split()[0] in ("Add", "Put", "Place", "Insert")
    assert "杯子" in row["instruction_zh"]
    assert added["suitcase"]["status"] == schema.SKIPPED


def test_addition_names_a_nearby_object_and_where_it_is():
    saucer = {"label": "saucer", "bbox": [0, 0, 300, 200]}
    spoon = {"label": "spoon", "bbox": [220, 60, 40, 80]}
    slots = add_task.describe_addition(spoon, [saucer, spoon], (400, 300))
    assert slots["slots_en"]["where"] == "on the right of the saucer"
    assert slots["slots_zh"]["where"] == "碟子的右侧"
    tower = {"label": "launch tower", "bbox": [0, 0, 60, 300]}
    rocket = {"label": "rocket", "bbox": [90, 50, 30, 200]}
    slots = add_task.describe_addition(rocket, [tower, rocket], (400, 300))
    assert slots["slots_en"]["where"] == "to the right of the launch tower" and slots["slots_zh"]["where"] == "发射塔右边"
    alone = add_task.describe_addition(rocket, [rocket], (400, 300))
    assert alone["slots_en"]["where"] == "on the left of the picture" and alone["slots_zh"]["where"] == "画面左侧"
    assert "near" not in alone["slots_en"] and add_task.with_article("eye") == "an eye"


def test_gates_tell_a_removal_from_a_no_op_a_leak_and_a_smear(removed, cpu_cfg):
    rgb, clean = _scene()
    limits = cpu_cfg["tasks"]["subject_remove"]["gate"]
    mask = decode_mask(removed["cup"]["mask"]["bytes"])
    filled = rgb.copy()
    filled[mask] = clean[mask]
    verdict = lambda before, after: {g.name: g.passed for g in removal_gate_results(before, after, mask, limits)}  # noqa: E731
    assert all(verdict(rgb, filled).values())
    noop = verdict(rgb, rgb)
    assert not noop["inside_change"] and not noop["colour_toward_ring"]
    leaked = filled.copy()
    leaked[:20] = 255 - leaked[:20]
    assert not verdict(rgb, leaked)["outside_change"]
    # a busy texture painted where a plain background belongs: the fill is unlike its ring
    busy = filled.copy()
    busy[mask] = np.where((np.arange(200) // 3 % 2 == 0)[None, :].repeat(200, 0)[mask][:, None], 255, 0)
    assert not verdict(rgb, busy)["edge_density_excess"]
    # the add gate reads the pair the other way round
    removal_row = {**removed["cup"], "status": schema.PENDING, "scores": None}
    swapped = {**removal_row, "source_image": removal_row["target_image"], "target_image": removal_row["source_image"]}
    assert AddGateStage(("subject_add",), limits).process_row(dict(swapped))["status"] == schema.OK
    assert RemoveGateStage(("subject_remove",), limits).process_row(dict(swapped))["status"] == schema.REJECTED


# ---- tiny path: the seed's models with random weights -------------------------------------------------


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("remove_tiny")
    cfg = config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(root)}}])
    ensure_tiny(cfg, ["florence2", "sam2", "flux_fill"], log=lambda m: None)
    return cfg


def test_tiny_recipe_asks_flux_fill_to_fill_the_grown_sam2_mask_with_background(tiny_cfg, monkeypatch):
    stages = build_stages(remove_task.TASK, tiny_cfg)
    names = [s.name for s in stages]
    assert names == ["grounding_phrases", "florence2_grounding", "select_objects", "sam2_mask", "removal_propose", "flux_fill", "template_instruction", "remove_gate"]
    for stage in stages:
        stage.setup()
    flux = next(s for s in stages if isinstance(s, FluxFillStage))
    calls = record_pipeline_calls(flux.pipe, monkeypatch)
    # 64 x 64, Flux's working size in the tiny profile, with the cup right of centre
    rgb = np.ascontiguousarray(_scene()[0][::2, ::2][8:72, 36:100])
    box = [39, 22, 20, 20]
    rows = [_row(rgb, remove_task.TASK, [{"label": "cup", "bbox": box}])]
    seen = {}  # what each stage handed on
    for stage in stages:
        rows = run_stage(stage, rows)
        seen[stage.name] = [dict(r) for r in rows]
    segmented = decode_mask(blob(seen["sam2_mask"][0], "mask:0"))
    assert len(calls) == 1 and len(rows) == 1
    row = rows[0]
    assert row["status"] in (schema.OK, schema.REJECTED), row.get("reason")
    assert calls[0]["prompt"] == [tiny_cfg["tasks"]["subject_remove"]["background_prompt"]]
    candidate_mask = decode_mask(seen["removal_propose"][0]["mask"]["bytes"])
    sent = np.asarray(calls[0]["mask_image"][0]) > 127
    # the mask Flux-Fill got: SAM-2's region (the box where SAM-2 fell back to its ellipse), grown
    # by the recipe, then by the stage
    assert np.array_equal(sent, dilate(candidate_mask, flux.mask_dilate_px))
    edit = schema.loads(row["edit"])
    if edit["mask_source"].startswith("box"):  # the segmenter failed (random weights): the whole box goes
        covered = box_mask(box, candidate_mask.shape)
    else:
        covered = segmented
    assert candidate_mask[dilate(covered, edit["mask_dilate_px"])].all()
    assert edit["mask_dilate_px"] >= 1 and edit["prompt"] == calls[0]["prompt"][0]
    record = provenance(row)["stages"]
    assert record["flux_fill"]["prompt"] == edit["prompt"] and record["sam2_mask"]["methods"]
    target = decode_image(row["target_image"]["bytes"])
    assert np.array_equal(target[~sent], rgb[~sent])  # pasted inside the grown mask only
