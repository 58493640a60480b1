"""Masks from boxes with SAM-2: the gpu profile's counterpart of stages/grabcut_mask.py, writing
the same `mask:<i>` blobs so either stage can feed the next.

Why transformers' `Sam2Model`/`Sam2Processor` and not the `sam2` package: the package compiles a
CUDA extension (or needs SAM2_BUILD_CUDA=0), loads checkpoints through hydra configs, and needs
patching for inputs other than 1024 px, while the transformers classes load the released
checkpoints with `from_pretrained` (safetensors, no remote code) and run unchanged on a CPU.

Box prompts ask for one mask (`multimask_output=False`). Checked against the SAM-2 repo
(facebookresearch/sam2 at 2b90b9f): `SAM2ImagePredictor.predict` (sam2/sam2_image_predictor.py,
lines 261-266) says three masks help "ambiguous input prompts (such as a single click)" while "for
non-ambiguous prompts, such as multiple input prompts, multimask_output=False can give better
results"; a box is such a prompt. The three multimask tokens are trained to split an ambiguous
click into part, object and group, so keeping the highest predicted IoU among them can return a
part of the boxed object. Nothing is lost: with one output the decoder still falls back to the
best multimask candidate when the single mask is unstable (`dynamic_multimask_via_stability`:
sam2/build_sam.py lines 85 and 123 turn it on for inference; transformers' Sam2MaskDecoder, in
models/sam2/modeling_sam2.py, does the same and its config defaults it to True)."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from transformers import AutoProcessor, Sam2Model

from pipeline.core.image_io import decode_image, encode_image
from pipeline.core.rows import record_fallback, record_stage, set_blob, work
from pipeline.core.stage import ModelStage, ModelUse, Resources, Row
from stages.grabcut_mask import clean_mask, ellipse_mask
from stages.models.torch_device import LoadedModel, dtype_name, load_model

Sam2 = LoadedModel  # the model, its processor, and where they run


def load_sam2(model_ref: str, revision: str | None = None) -> Sam2:
    return load_model(Sam2Model, AutoProcessor, model_ref, revision)


def xywh_to_xyxy(box: list[float]) -> list[float]:
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def predict_box_masks(
    sam: Sam2, images: list[np.ndarray], boxes_xyxy: list[list[list[float]]], mask_threshold: float = 0.0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each image, one boolean mask per box at the image's own size, and the predicted IoU
    of each. The image encoder runs once for the whole batch; the decoder once per image, since
    images carry different numbers of boxes."""
    # decoded PNGs are read-only views; torch wants arrays it may write to
    writable = [np.array(rgb) for rgb in images]
    pixels = sam.processor(images=writable, return_tensors="pt")["pixel_values"].to(sam.device, sam.dtype)
    results = []
    with torch.inference_mode():
        embeddings = sam.model.get_image_embeddings(pixels)
        for i, (rgb, boxes) in enumerate(zip(images, boxes_xyxy)):
            size = [rgb.shape[0], rgb.shape[1]]
            if not boxes:
                results.append((np.zeros((0, *size), bool), np.zeros(0, np.float32)))
                continue
            prompt = sam.processor(original_sizes=[size], input_boxes=[boxes], return_tensors="pt")
            out = sam.model(
                image_embeddings=[level[i : i + 1] for level in embeddings],
                input_boxes=prompt["input_boxes"].to(sam.device),
                multimask_output=False,  # a box is not ambiguous: see the module docstring
            )
            # (boxes, 1, h, w) low-resolution logits and (boxes, 1) predicted IoU
            masks = sam.processor.post_process_masks([out.pred_masks[0].float().cpu()], [size], mask_threshold=mask_threshold)[0]
            results.append((masks[:, 0].numpy(), out.iou_scores[0, :, 0].float().cpu().numpy()))
    return results


def refine_mask(mask: np.ndarray, min_component: float | None, dilate_px: int) -> np.ndarray:
    """Cleanup after prediction: specks under `min_component` of the largest part dropped and
    holes filled (None: neither; 0: holes only), then grown by `dilate_px` so an edit covers
    the object's soft edge."""
    if min_component is not None:
        mask = clean_mask(mask, min_component)
    if dilate_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1))
        mask = cv2.dilate(mask.astype(np.uint8), kernel) > 0
    return mask.astype(bool)


def box_coverage(mask: np.ndarray, box: list[float]) -> float:
    """Share of the box (xywh) that the mask covers."""
    x, y, w, h = box
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1, y1 = min(mask.shape[1], int(np.ceil(x + w))), min(mask.shape[0], int(np.ceil(y + h)))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    return float(mask[y0:y1, x0:x1].sum()) / max(1.0, w * h)


class Sam2MaskStage(ModelStage):
    """One mask per selected object, kept as `mask:<i>` scratch on the input's row."""

    name = "sam2_mask"
    reads = ("source_image", "work.selected")
    writes = ("blob.mask:*", "provenance")
    model = ModelUse("sam2", "sam2")

    def __init__(
        self,
        model_ref: str,
        tasks: tuple[str, ...],
        revision: str | None = None,
        min_component: float | None = 0.1,
        dilate_px: int = 0,
        min_box_fraction: float = 0.05,
        mask_threshold: float = 0.0,
        resources: Resources | None = None,
    ):
        self.model_ref = model_ref
        self.tasks = tasks
        self.revision = revision
        self.resources = resources or self.resources
        self.min_component = min_component
        self.dilate_px = dilate_px
        self.min_box_fraction = min_box_fraction
        self.mask_threshold = mask_threshold
        self.sam: Sam2 | None = None

    @classmethod
    def from_settings(cls, cfg, params, refs, tasks):
        ref, revision = refs["sam2"]
        return cls(
            ref, tasks, revision, min_component=params["min_component"], dilate_px=params["dilate_px"],
            min_box_fraction=params["min_box_fraction"],
        )

    def setup(self) -> None:
        self.sam = load_sam2(self.model_ref, self.revision)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        images = [decode_image(row["source_image"]["bytes"]) for row in rows]
        selected = [work(row)["selected"] for row in rows]
        predictions = []
        step = self.resources.batch_size
        for start in range(0, len(rows), step):
            predictions += predict_box_masks(
                self.sam,
                images[start : start + step],
                [[xywh_to_xyxy(o["bbox"]) for o in objs] for objs in selected[start : start + step]],
                self.mask_threshold,
            )
        for row, rgb, objects, (masks, scores) in zip(rows, images, selected, predictions):
            self._write(row, (rgb.shape[1], rgb.shape[0]), objects, masks, scores)
        return rows

    def _write(self, row: Row, size: tuple[int, int], objects: list[dict], masks: np.ndarray, scores: np.ndarray) -> None:
        methods = []
        for i, (obj, mask) in enumerate(zip(objects, masks)):
            mask = refine_mask(mask, self.min_component, self.dilate_px)
            coverage = box_coverage(mask, obj["bbox"])
            method = "sam2"
            if coverage < self.min_box_fraction:
                mask = ellipse_mask(obj["bbox"], size)
                method = "ellipse"
                record_fallback(
                    row, self.name, f"object {i} ({obj['label']}): SAM-2 covered {coverage:.0%} of the box; used the inscribed ellipse"
                )
            methods.append(method)
            set_blob(row, f"mask:{i}", encode_image(mask.astype(np.uint8) * 255))
        record_stage(
            row,
            self.name,
            model=self.model_ref,
            revision=self.revision,
            dtype=dtype_name(self.sam.dtype),
            methods=methods,
            predicted_iou=[round(float(s), 4) for s in scores],
        )
