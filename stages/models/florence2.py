"""Florence-2 grounding: boxes for named phrases, or for every object it sees, in working-image
pixels; also OCR with regions and detailed captions for the tasks that need them.

The model loads through transformers' own `Florence2ForConditionalGeneration` (safetensors, no
remote code). Everything after generation is plain functions over strings, so tests feed them
hand-written model outputs.

Usage checked against transformers' docs/source/en/model_doc/florence2.md (the AutoModel example:
`generate(**inputs, max_new_tokens=1024, num_beams=3)`, `batch_decode(..., skip_special_tokens=False)`,
then `post_process_generation(text, task=, image_size=)`); `model_stages.florence2` keeps those
numbers on the gpu profile, since 256 new tokens cut a busy `<OD>` or OCR answer short."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from pipeline.core.image_io import decode_image
from pipeline.core.rows import record_fallback, record_stage, update_work, work
from pipeline.core.stage import ModelStage, ModelUse, Resources, Row
from stages.models.torch_device import LoadedModel, dtype_name, load_model

OD = "<OD>"
PHRASE_GROUNDING = "<CAPTION_TO_PHRASE_GROUNDING>"
OCR_WITH_REGION = "<OCR_WITH_REGION>"
MORE_DETAILED_CAPTION = "<MORE_DETAILED_CAPTION>"
BOX_TASKS = (OD, PHRASE_GROUNDING)

LOCATION_BINS = 1000  # Florence-2 quantises each axis into this many bins, whatever the image size


Florence2 = LoadedModel  # the model, its processor, and where they run


def load_florence2(model_ref: str, revision: str | None = None) -> Florence2:
    return load_model(AutoModelForImageTextToText, AutoProcessor, model_ref, revision)


def generate_texts(
    florence: Florence2, images: list[np.ndarray], prompts: list[str], max_new_tokens: int, num_beams: int
) -> list[str]:
    """One raw answer per (image, prompt) pair, special tokens kept: the parsers need them."""
    # decoded PNGs are read-only views; torch wants arrays it may write to
    writable = [np.array(rgb) for rgb in images]
    inputs = florence.processor(text=prompts, images=writable, return_tensors="pt", padding=True)
    inputs = inputs.to(florence.device, florence.dtype)  # casts only the floating tensors
    with torch.inference_mode():
        ids = florence.model.generate(
            **inputs, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False
        )
    return florence.processor.batch_decode(ids, skip_special_tokens=False)


def run_task(
    florence: Florence2,
    images: list[np.ndarray],
    task: str,
    text_input: str | None = None,
    max_new_tokens: int = 1024,
    num_beams: int = 3,
) -> list[Any]:
    """Runs one task prompt on every image; each answer parsed in that image's pixel frame:
    `<OD>` and grounding give {"bboxes": [[x0, y0, x1, y1]], "labels"}, `<OCR_WITH_REGION>`
    {"quad_boxes": [[x0, y0, ..., x3, y3]], "labels"}, captions a string."""
    prompts = [task + (text_input or "")] * len(images)
    texts = generate_texts(florence, images, prompts, max_new_tokens, num_beams)
    return [parse_generation(florence.processor, text, task, image_size(img)) for text, img in zip(texts, images)]


def image_size(rgb: np.ndarray) -> tuple[int, int]:
    return rgb.shape[1], rgb.shape[0]


def parse_generation(processor: Any, text: str, task: str, size: tuple[int, int]) -> Any:
    """The processor's own parser; for box tasks, the location-token parser when the processor
    cannot parse (a folder saved without `post_processor_config`)."""
    try:
        return processor.post_process_generation(text, task=task, image_size=size)[task]
    except ValueError:
        if task not in BOX_TASKS:
            raise
    labelled = parse_loc_boxes(text, *size)
    return {"bboxes": [box for _, box in labelled], "labels": [label for label, _ in labelled]}


_SEGMENT = re.compile(r"([^<>]*)((?:<loc_\d+>){4,})")  # a label never spans a tag
_LOC = re.compile(r"<loc_(\d+)>")


def loc_to_pixel(index: int, extent: int) -> float:
    """Centre of location bin `index` along an axis `extent` pixels long."""
    index = min(max(index, 0), LOCATION_BINS - 1)
    return (index + 0.5) * extent / LOCATION_BINS


def parse_loc_boxes(text: str, width: int, height: int) -> list[tuple[str, list[float]]]:
    """`label<loc_a><loc_b><loc_c><loc_d>...` -> [(label, [x0, y0, x1, y1])] in pixels. A label
    followed by several groups of four gets one box per group; a trailing partial group is
    dropped."""
    text = text.replace("<s>", "").replace("</s>", "").replace("<pad>", "")
    boxes = []
    for label, locs in _SEGMENT.findall(text):
        bins = [int(n) for n in _LOC.findall(locs)]
        for i in range(0, len(bins) - 3, 4):
            x0, y0, x1, y1 = bins[i : i + 4]
            boxes.append(
                (
                    label.strip(),
                    [loc_to_pixel(x0, width), loc_to_pixel(y0, height), loc_to_pixel(x1, width), loc_to_pixel(y1, height)],
                )
            )
    return boxes


def objects_from_boxes(bboxes: list[list[float]], labels: list[str], width: int, height: int, min_side: float = 2.0) -> list[dict]:
    """Corner boxes -> the annotation format (COCO xywh), clipped to the image; slivers dropped."""
    objects = []
    for (x0, y0, x1, y1), label in zip(bboxes, labels):
        x0, x1 = sorted((min(max(float(x0), 0.0), width), min(max(float(x1), 0.0), width)))
        y0, y1 = sorted((min(max(float(y0), 0.0), height), min(max(float(y1), 0.0), height)))
        if x1 - x0 < min_side or y1 - y0 < min_side or not label.strip():
            continue
        box = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
        objects.append({"label": label.strip(), "bbox": box, "source": "florence2"})
    return objects


@dataclass(frozen=True)
class _Query:
    row: int
    task: str
    phrase: str | None

    @property
    def prompt(self) -> str:
        return self.task + (self.phrase or "")


class Florence2Stage(ModelStage):
    """What every Florence-2 stage shares: the model loaded once, prompts run in micro-batches."""

    model = ModelUse("florence2", "florence2")

    def __init__(
        self,
        model_ref: str,
        tasks: tuple[str, ...],
        revision: str | None = None,
        max_new_tokens: int = 1024,
        num_beams: int = 3,
        resources: Resources | None = None,
    ):
        self.model_ref = model_ref
        self.tasks = tasks
        self.revision = revision
        self.resources = resources or self.resources
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.florence: Florence2 | None = None

    @classmethod
    def from_settings(cls, cfg, params, refs, tasks):
        ref, revision = refs["florence2"]
        return cls(ref, tasks, revision, max_new_tokens=params["max_new_tokens"], num_beams=params["num_beams"])

    def setup(self) -> None:
        self.florence = load_florence2(self.model_ref, self.revision)

    def generate(self, images: list[np.ndarray], prompts: list[str]) -> list[str]:
        texts: list[str] = []
        step = self.resources.batch_size
        for start in range(0, len(prompts), step):
            texts += generate_texts(
                self.florence, images[start : start + step], prompts[start : start + step], self.max_new_tokens, self.num_beams
            )
        return texts


class Florence2GroundingStage(Florence2Stage):
    """Boxes for the phrases a task asks for (`phrases` in the row's work state), or for every
    object `<OD>` finds; written as `objects`, the same place annotations go."""

    name = "florence2_grounding"
    reads = ("source_image", "work.phrases", "work.objects")
    writes = ("work.objects", "provenance")

    def process_batch(self, rows: list[Row]) -> list[Row]:
        images = [decode_image(row["source_image"]["bytes"]) for row in rows]
        queries = []
        for i, row in enumerate(rows):
            phrases = [p for p in work(row).get("phrases") or [] if p.strip()]
            queries += [_Query(i, PHRASE_GROUNDING, p.strip()) for p in phrases] or [_Query(i, OD, None)]
        texts = self.generate([images[q.row] for q in queries], [q.prompt for q in queries])
        found: list[list[dict]] = [[] for _ in rows]
        for query, text in zip(queries, texts):
            width, height = image_size(images[query.row])
            parsed = parse_generation(self.florence.processor, text, query.task, (width, height))
            # a grounded box is named by the phrase asked for, not the fragment the model echoed
            labels = [query.phrase] * len(parsed["bboxes"]) if query.phrase else parsed["labels"]
            found[query.row] += objects_from_boxes(parsed["bboxes"], labels, width, height)
        for i, row in enumerate(rows):
            self._write(row, found[i], [q.prompt for q in queries if q.row == i])
        return rows

    def _write(self, row: Row, objects: list[dict], prompts: list[str]) -> None:
        if objects:
            update_work(row, objects=objects)
        else:
            kept = work(row).get("objects")
            record_fallback(
                row,
                self.name,
                f"Florence-2 found no object; kept {len(kept or [])} objects already on the row",
            )
        record_stage(
            row,
            self.name,
            model=self.model_ref,
            revision=self.revision,
            dtype=dtype_name(self.florence.dtype),
            prompts=prompts,
            found=len(objects),
        )
