import numpy as np
import pytest

from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import blob, provenance
from pipeline.engine.stage_runner import run_stage
from stages.grabcut_mask import GrabCutMaskStage, ellipse_mask
from stages.models.sam2 import (
    Sam2MaskStage,
    box_coverage,
    predict_box_masks,
    refine_mask,
    xywh_to_xyxy,
)
from stages.models.tiny import sam2 as tiny_sam2
from stages.models.torch_device import device_and_dtype
from tests.model_rows import pipeline_row

TASK = "color_alteration"
DEVICE, DTYPE = device_and_dtype()  # CPU float32 here; CUDA bfloat16 where a GPU is present


@pytest.fixture(scope="module")
def tiny_ref(tmp_path_factory):
    return str(tiny_sam2.build(tmp_path_factory.mktemp("sam2")))


@pytest.fixture(scope="module")
def loaded_stage(tiny_ref):
    stage = Sam2MaskStage(tiny_ref, (TASK,), min_box_fraction=0.0)
    stage.setup()
    return stage


def _image(height, width, seed):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    rgb[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = (200, 40, 40)
    return rgb


def _row(rgb, selected, task=TASK, index=0):
    objects = [dict(o) for o in selected]
    return pipeline_row(rgb, index, task, work={"objects": objects, "selected": selected})


def test_a_box_prompt_asks_for_the_single_mask(loaded_stage):
    """A box is an unambiguous prompt: SAM-2's predictor docs ask for one mask
    (multimask_output=False) rather than the best of three part/object/group candidates."""
    sam = loaded_stage.sam
    asked = []

    class Spy:
        def __getattr__(self, name):
            return getattr(sam.model, name)

        def __call__(self, **kwargs):
            asked.append(kwargs["multimask_output"])
            return sam.model(**kwargs)

    boxes = [[8.0, 8.0, 40.0, 40.0], [0.0, 0.0, 20.0, 30.0]]
    [(masks, scores)] = predict_box_masks(sam._replace(model=Spy()), [_image(48, 64, 0)], [boxes])
    assert asked == [False]
    assert masks.shape == (2, 48, 64) and masks.dtype == bool and scores.shape == (2,)


def test_cleanup_drops_specks_fills_holes_and_dilates():
    mask = np.zeros((60, 60), bool)
    mask[10:40, 10:40] = True
    mask[20:25, 20:25] = False  # a hole
    mask[50:52, 50:52] = True  # a speck, under 1% of the blob
    cleaned = refine_mask(mask, min_component=0.1, dilate_px=0)
    assert cleaned[20:25, 20:25].all()
    assert not cleaned[50:52, 50:52].any()
    assert cleaned.sum() == 30 * 30
    grown = refine_mask(mask, min_component=0.1, dilate_px=2)
    assert grown[8:42, 10:40].all() and not grown[7, 25] and grown.sum() > cleaned.sum()
    assert np.array_equal(refine_mask(mask, min_component=None, dilate_px=0), mask)
    holes_only = refine_mask(mask, min_component=0.0, dilate_px=0)
    assert holes_only[50:52, 50:52].all() and holes_only[20:25, 20:25].all()


def test_box_coverage_counts_only_inside_the_box():
    mask = np.zeros((40, 40), bool)
    mask[0:20, 0:40] = True
    assert box_coverage(mask, [0, 10, 10, 20]) == pytest.approx(0.5)
    assert box_coverage(mask, [0, 25, 10, 10]) == 0.0
    assert box_coverage(mask, [50, 50, 5, 5]) == 0.0
    assert xywh_to_xyxy([3, 4, 10, 20]) == [3.0, 4.0, 13.0, 24.0]


def test_tiny_twin_gives_one_mask_per_box_at_each_images_own_size(loaded_stage):
    images = [_image(96, 128, 0), _image(80, 64, 1)]
    boxes = [[[10, 20, 60, 70], [30, 10, 120, 90]], [[5, 5, 40, 60]]]
    (masks_a, iou_a), (masks_b, iou_b) = predict_box_masks(loaded_stage.sam, images, boxes)
    assert masks_a.shape == (2, 96, 128) and masks_a.dtype == bool
    assert masks_b.shape == (1, 80, 64)
    assert iou_a.shape == (2,) and iou_b.shape == (1,)
    sam = loaded_stage.sam
    assert (sam.device, sam.dtype) == (DEVICE, DTYPE) and sam.model.dtype == DTYPE and not sam.model.training


def test_stage_is_a_drop_in_for_grabcut(loaded_stage):
    rgb = _image(96, 128, 2)
    selected = [{"label": "box", "bbox": [32, 24, 64, 48]}, {"label": "corner", "bbox": [0, 0, 30, 20]}]
    other_task = _row(_image(64, 64, 3), selected, task="text_editing", index=1)
    [sam_row] = [r for r in run_stage(loaded_stage, [_row(rgb, selected), other_task]) if r["task"] == TASK]
    assert sam_row["status"] == schema.PENDING
    grabcut = GrabCutMaskStage((TASK,), iterations=1, box_margin=0.02, min_fraction=0.05, max_fraction=0.98)
    [grab_row] = run_stage(grabcut, [_row(rgb, selected)])
    assert [b["name"] for b in sam_row["_blobs"]] == [b["name"] for b in grab_row["_blobs"]] == ["mask:0", "mask:1"]
    for i in range(2):
        stored = decode_image(blob(sam_row, f"mask:{i}"), "L")
        assert stored.shape == (96, 128) and set(np.unique(stored)) <= {0, 255}
    info = provenance(sam_row)["stages"]["sam2_mask"]
    assert info["methods"] == ["sam2", "sam2"] and info["dtype"] == str(DTYPE).removeprefix("torch.") and len(info["predicted_iou"]) == 2
    assert "fallbacks" not in provenance(sam_row)


def test_stage_falls_back_to_the_ellipse_for_a_thin_mask(tiny_ref, loaded_stage):
    strict = Sam2MaskStage(tiny_ref, (TASK,), min_box_fraction=1.01)  # no mask can cover more than its box
    strict.sam = loaded_stage.sam
    selected = [{"label": "box", "bbox": [32, 24, 64, 48]}]
    [row] = run_stage(strict, [_row(_image(96, 128, 4), selected)])
    assert np.array_equal(decode_mask(blob(row, "mask:0")), ellipse_mask([32, 24, 64, 48], (128, 96)))
    prov = provenance(row)
    assert prov["stages"]["sam2_mask"]["methods"] == ["ellipse"]
    assert prov["fallbacks"][0]["stage"] == "sam2_mask" and "ellipse" in prov["fallbacks"][0]["what"]
