"""CLIP similarity gates (gpu profile), as InstructPix2Pix filters its pairs:

  image-image   cos(E_img(source), E_img(target)) >= 0.7: the target is still the source's picture
  directional   cos(E_img(target) - E_img(source), E_txt(target caption) - E_txt(source caption))
                >= 0.2: the picture moved the way the edit says

Rows carry no captions, so a pair of captions is written from the edit's own fields (the object
and its new colour, the old and new words...), falling back to "a photo" and the instruction.
CLIPModel and its processor load through transformers' `from_pretrained` (safetensors only)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from filters.common_gates import ModelGateStage, cosine_rows
from filters.gates import GateResult
from pipeline.core import schema
from pipeline.core.rows import record_stage
from pipeline.core.stage import ModelUse, Row
from stages.models.torch_device import load_model, model_info

PLAIN = "a photo"
MIN_CHANGE = 1e-3  # between unit embeddings, less is float rounding, not a change


def _article(noun: str) -> str:
    return noun if noun.split(" ", 1)[0] in ("a", "an", "the") else f"a {noun}"


def edit_captions(task: str, edit: dict, instruction: str | None) -> tuple[str, str]:
    """(source caption, target caption) for the CLIP direction of one edit."""
    en = edit.get("slots_en") or {}
    obj = edit.get("object") or en.get("object") or "thing"
    if task == "color_alteration" and edit.get("color"):
        return f"a photo of {_article(obj)}", f"a photo of a {en.get('color', edit['color'])} {obj}"
    if task == "material_modification" and edit.get("material"):
        return f"a photo of {_article(obj)}", f"a photo of {_article(obj)} made of {en.get('material', edit['material'])}"
    if task == "subject_remove":
        return f"a photo with {_article(obj)}", f"a photo without {_article(obj)}"
    if task == "subject_add":
        return f"a photo without {_article(obj)}", f"a photo with {_article(obj)}"
    if task == "subject_replace" and en.get("new"):
        return f"a photo of {_article(en.get('old', obj))}", f"a photo of {_article(en['new'])}"
    if task == "background_change" and en.get("scene"):
        subject = en.get("subject") or edit.get("subject") or "thing"
        return f"a photo of {_article(subject)}", f"a photo of {_article(subject)} in front of {en['scene']}"
    if task == "text_modification" and edit.get("new_text"):
        return f'a photo with the text "{edit.get("old_text", "")}"', f'a photo with the text "{edit["new_text"]}"'
    if task == "style_transfer" and en.get("style"):
        return PLAIN, en["style"]
    if task == "tone_transformation" and en:
        return PLAIN, f"a photo, {next(iter(en.values()))}"
    return PLAIN, instruction or PLAIN


def clip_gate_results(image_similarity: float, direction: float, limits: dict) -> list[GateResult]:
    return [
        GateResult.at_least("clip_image_similarity", image_similarity, limits["min_clip_image"]),
        GateResult.at_least("clip_direction", direction, limits["min_clip_direction"]),
    ]


def directional_similarity(src_img: np.ndarray, tgt_img: np.ndarray, src_txt: np.ndarray, tgt_txt: np.ndarray) -> np.ndarray:
    """Row-wise cosine of the image change and the caption change (all inputs (N, D), unit
    length); a pair with no change on one side scores 0, not the direction of rounding noise."""
    image_change, text_change = tgt_img - src_img, tgt_txt - src_txt
    still = (np.linalg.norm(image_change, axis=1) < MIN_CHANGE) | (np.linalg.norm(text_change, axis=1) < MIN_CHANGE)
    return np.where(still, 0.0, cosine_rows(image_change, text_change))


class ClipEncoder:
    def __init__(self, model_ref: str, revision: str | None = None, batch_size: int = 16):
        from transformers import AutoProcessor, CLIPModel

        self.model_ref, self.revision, self.batch_size = model_ref, revision, batch_size
        self.model, self.processor, self.device, self.dtype = load_model(CLIPModel, AutoProcessor, model_ref, revision)

    @staticmethod
    def _pooled(output: Any):
        return getattr(output, "pooler_output", output)  # transformers 5 wraps the projected features

    def images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                part = [np.array(img) for img in images[start : start + self.batch_size]]
                pixels = self.processor(images=part, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
                chunks.append(self._pooled(self.model.get_image_features(pixel_values=pixels)).float().cpu().numpy())
        return np.concatenate(chunks)

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                inputs = self.processor(text=list(texts[start : start + self.batch_size]), padding=True, truncation=True, return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                chunks.append(self._pooled(self.model.get_text_features(**inputs)).float().cpu().numpy())
        return np.concatenate(chunks)

    def describe(self) -> dict[str, Any]:
        return model_info(self.model_ref, self.revision, self.model, self.dtype)


def _unit(values: np.ndarray) -> np.ndarray:
    return values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)


class ClipSimilarityStage(ModelGateStage):
    name = "clip_gate"
    reads = ("status", "task", "source_image", "target_image", "edit", "instruction_en", "scores?")
    writes = ("scores", "status", "reason", "provenance")
    model = ModelUse("clip", "clip")

    def load(self) -> ClipEncoder:
        return ClipEncoder(self.model_ref, self.revision, int(self.limits.get("clip_batch_size", 16)))

    def gate_batch(self, rows: list[Row], sources, targets) -> list[list[GateResult]]:
        images = _unit(self.encoder.images(list(sources) + list(targets)))
        src_img, tgt_img = images[: len(rows)], images[len(rows) :]
        captions = [edit_captions(r["task"], schema.loads(r.get("edit")), r.get("instruction_en")) for r in rows]
        texts = _unit(self.encoder.texts([c[0] for c in captions] + [c[1] for c in captions]))
        src_txt, tgt_txt = texts[: len(rows)], texts[len(rows) :]
        same = cosine_rows(src_img, tgt_img)
        direction = directional_similarity(src_img, tgt_img, src_txt, tgt_txt)
        out = []
        for row, caption, s, d in zip(rows, captions, same, direction):
            record_stage(row, self.name, captions=list(caption), **self.encoder.describe())
            out.append(clip_gate_results(float(s), float(d), self.limits_for(row)))
        return out
