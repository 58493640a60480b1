"""text_modification: change what a line of text says, in the same font size, weight, colour and
angle, and nothing else.

cpu profile: PP-OCR (rapidocr) finds the lines -> a photo without legible text gets a rendered
sign (English and Chinese lines) -> one candidate per line and new wording -> OpenCV inpainting
erases the old ink -> the new words are drawn in the old line's style -> bilingual template
instruction quoting both texts -> gates (OCR reads the new text; outside the text box unchanged).
tiny and gpu: Florence-2 `<OCR_WITH_REGION>` finds the lines and Flux-Fill erases them."""

from __future__ import annotations

from typing import Any

import numpy as np

from filters.text_gate import TextGateStage
from pipeline.core import schema
from pipeline.core.image_io import decode_image, encode_image
from pipeline.core.rows import record_fallback, record_stage, work
from pipeline.core.stage import Resources, Row, Stage
from stages.candidates import candidate_rng, new_candidate
from stages.template_instructions import TemplateInstructionStage
from stages.text_layout import Frame, frame_mask, ink_size
from tasks.text.erase import TextEraseStage
from tasks.text.render import TextRenderStage
from tasks.text.sign import TextSourceStage
from tasks.text.style import estimate_style
from tasks.text.words import KIND_NAMES, choose_replacements

TASK = "text_modification"
PROFILES = ("cpu", "tiny", "gpu")

TEMPLATES_EN = [
    'Change the text "{old}" to "{new}".',
    'Replace the words "{old}" with "{new}".',
    'Change "{old}" on the {where} to "{new}".',
    'Edit the text on the {where} so that "{old}" reads "{new}".',
    'Rewrite "{old}" as "{new}", keeping the same font, size and colour.',
]
TEMPLATES_ZH = [
    "把文字“{old}”改成“{new}”。",
    "将“{old}”替换为“{new}”。",
    "把{where}上的“{old}”改为“{new}”。",
    "让{where}上的文字由“{old}”变成“{new}”，字体、大小和颜色保持不变。",
]

ERASE_PROMPTS = {
    "photo": "the plain background, without any text or letters",
    "sign": "a blank sign with no text or letters on it",
    "label": "a blank label with no text or letters on it",
    "poster": "a blank poster with no text or letters on it",
}


def line_style(rgb: np.ndarray, item: dict) -> dict | None:
    """A rendered line carries its style; a line read from a photo has it measured."""
    frame = Frame.from_dict(item["frame"])
    if "font_px" in item:
        return {k: item[k] for k in ("font_px", "weight", "text_rgb", "bg_rgb")} | {"ink_centre": [frame.width / 2, frame.height / 2]}
    return estimate_style(rgb, frame, item["text"])


def layout_new_text(frame: Frame, old: str, new: str, style: dict, max_width: float) -> tuple[Frame, int, list[float]]:
    """The frame, font size and ink centre for `new`: the old line's centre, height and angle,
    widened to fit the new words (the font shrinks only where even `max_width` is too narrow)."""
    px, weight = style["font_px"], style["weight"]
    pad = max(0.3 * px, frame.width - ink_size(old, weight, px)[0])
    new_width = ink_size(new, weight, px)[0]
    if new_width + pad > max_width:
        px = max(6, int(px * (max_width - pad) / max(1, new_width)))
        new_width = ink_size(new, weight, px)[0]
    width = max(frame.width, new_width + pad)
    edited = Frame(frame.cx, frame.cy, width, frame.height, frame.angle)
    return edited, px, [width / 2, style["ink_centre"][1]]


class TextProposeStage(Stage):
    """One candidate per (line, new wording), the mask covering the old and the new line."""

    name = "text_propose"
    reads = ("source_image", "work.texts", "work.text_origin", "source_sha256", "_unit", "_input")
    writes = ("sample_id", "mask", "edit", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=8)
    fans_out = True
    tasks = (TASK,)

    def __init__(self, max_texts: int, replacements_per_text: int, mask_margin: float, max_growth: float, max_mask_fraction: float, seed: int):
        self.max_texts = max_texts
        self.replacements_per_text = replacements_per_text
        self.mask_margin = mask_margin
        self.max_growth = max_growth
        self.max_mask_fraction = max_mask_fraction
        self.seed = seed

    def process_row(self, row: Row) -> list[Row]:
        rgb = decode_image(row["source_image"]["bytes"])
        state = work(row)
        rng = candidate_rng(row, self.seed)
        out: list[Row] = []
        for i, item in enumerate(state.get("texts", [])[: self.max_texts]):
            style = line_style(rgb, item)
            if style is None:
                record_fallback(row, self.name, f"line {i} ({item['text']!r}): no ink found, left out")
                continue
            frame = Frame.from_dict(item["frame"])
            max_width = item.get("max_width") or self.max_growth * frame.width
            for new in choose_replacements(item["text"], item["lang"] == "zh", self.replacements_per_text, rng):
                edit_frame, px, ink_centre = layout_new_text(frame, item["text"], new, style, max_width)
                grow = self.mask_margin * frame.height
                mask = frame_mask(edit_frame.grown(grow, grow), rgb.shape) | frame_mask(frame.grown(grow, grow), rgb.shape)
                if mask.mean() > self.max_mask_fraction:
                    record_fallback(row, self.name, f"line {i}: the text box would cover {mask.mean():.0%} of the image, left out")
                    continue
                out.append(self._candidate(row, len(out), i, item, new, style, frame, edit_frame, px, ink_centre, mask))
        return out

    def _candidate(self, row, index, line, item, new, style, frame, edit_frame, px, ink_centre, mask) -> Row:
        where_en, where_zh = KIND_NAMES[item.get("kind", "photo")]
        candidate = new_candidate(row, TASK, index)
        candidate["mask"] = schema.image_value(encode_image(mask.astype(np.uint8) * 255))
        x, y = np.nonzero(mask)[1], np.nonzero(mask)[0]
        candidate["edit"] = schema.dumps(
            {
                "type": TASK,
                "old_text": item["text"],
                "new_text": new,
                "lang": item["lang"],
                "origin": work(row).get("text_origin"),
                "kind": item.get("kind", "photo"),
                "quad": item["quad"],
                "frame": frame.to_dict(),
                "edit_frame": edit_frame.to_dict(),
                "box_xywh": [int(x.min()), int(y.min()), int(x.max() - x.min() + 1), int(y.max() - y.min() + 1)],
                "font_px": px,
                "weight": style["weight"],
                "text_rgb": [int(v) for v in style["text_rgb"]],
                "bg_rgb": [int(v) for v in style["bg_rgb"]],
                "ink_centre": [round(v, 2) for v in ink_centre],
                "angle_deg": round(frame.angle, 2),
                "prompt": ERASE_PROMPTS[item.get("kind", "photo")],
                "slots_en": {"old": item["text"], "new": new, "where": where_en},
                "slots_zh": {"old": item["text"], "new": new, "where": where_zh},
            }
        )
        record_stage(candidate, self.name, line_index=line, ocr_source=item.get("source"), font_scaled=px != style["font_px"])
        return candidate


def florence2_ocr_stage(cfg: dict[str, Any], tasks: tuple[str, ...]) -> Stage:
    """Florence-2 reading text, sized and sourced like the grounding stage (its own pool: it
    asks the model another question)."""
    from tasks.text.ocr_florence2 import Florence2OcrStage

    return Florence2OcrStage.from_config(cfg, tasks)


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain; `score` runs it on rows made elsewhere too."""
    return TextGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    """cpu: PP-OCR -> sign when no text -> OpenCV inpainting -> redraw. tiny and gpu: Florence-2
    OCR -> sign when no text -> Flux-Fill erases inside the text mask -> redraw."""
    task_cfg = cfg["tasks"][TASK]
    only = (TASK,)
    seed = cfg["run"]["seed"]
    source = TextSourceStage(only, task_cfg["ocr"], task_cfg["sign"], seed)
    propose = TextProposeStage(
        task_cfg["max_texts"], task_cfg["replacements_per_text"], task_cfg["mask_margin"], task_cfg["max_width_growth"], task_cfg["max_mask_fraction"], seed
    )
    finish = [
        TextRenderStage(only, task_cfg["feather_px"]),
        TemplateInstructionStage(only, TEMPLATES_EN, TEMPLATES_ZH),
        gate(cfg),
    ]
    if cfg["profile"] == "cpu":
        from stages.ocr_rapid import RapidOcrStage

        erase = task_cfg["erase"]
        return [RapidOcrStage(only), source, propose, TextEraseStage(only, erase["dilate_px"], erase["radius"]), *finish]
    from stages.models.factory import make_stage

    return [florence2_ocr_stage(cfg, only), source, propose, make_stage("flux_fill", cfg, only), *finish]
