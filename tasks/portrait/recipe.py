"""portrait_beautification: retouch a face (smoother skin that keeps its texture, an even tone,
a brighter face, optionally a slightly slimmer jaw) and leave everything else alone.

cpu profile: Haar cascade faces (annotated face boxes as the fallback) -> skin mask (YCrCb range
in the face and neck region, minus eyes and mouth) -> one candidate per face and retouch recipe
-> guided-filter smoothing, Lab tone and lightness, a small warp -> template instruction naming
the retouch -> gates (face still found, less high-frequency noise on the skin, outside unchanged).
tiny and gpu: Florence-2 grounds "face"; Flux-Fill refines the skin inside the mask before the
classical retouch. FluxFillStage takes no `strength` yet (FluxFillPipeline does), so the
refinement is a full-strength fill of the skin mask, not the low-strength pass it should be."""

from __future__ import annotations

from typing import Any

import numpy as np

from filters.portrait_gate import PortraitGateStage
from pipeline.core import schema
from pipeline.core.image_io import decode_mask, encode_image
from pipeline.core.rows import blob, record_fallback, record_stage, set_blob, work
from pipeline.core.stage import Resources, Row, Stage
from stages.candidates import candidate_rng, draw, new_candidate
from stages.template_instructions import TemplateInstructionStage
from tasks.portrait.face_find import FaceFindStage, FacePhrasesStage
from tasks.portrait.retouch import OPERATIONS, PortraitRetouchStage, slim_region
from tasks.portrait.skin import PortraitSkinStage

TASK = "portrait_beautification"
PROFILES = ("cpu", "tiny", "gpu")

TEMPLATES_EN = [
    "{Retouch}.",
    "Retouch the portrait: {retouch}.",
    "Beautify the {subject}: {retouch}, keeping the look natural.",
    "Give the {subject} a light beauty retouch: {retouch}.",
    "{Retouch}, without changing anything else.",
]
TEMPLATES_ZH = [
    "{retouch}。",
    "给{subject}做美颜：{retouch}。",
    "请为{subject}{retouch}，保持自然。",
    "对人像进行美化：{retouch}，其他保持不变。",
]

# operation: (English phrase, Chinese phrase, words for the generator's prompt)
OPERATION_WORDS = {
    "smooth": ("smooth the skin", "磨皮", "smooth clear skin with natural texture"),
    "even_tone": ("even out the skin tone", "均匀肤色", "an even skin tone"),
    "brighten": ("brighten the face", "提亮肤色", "a bright, fresh complexion"),
    "slim": ("slim the face slightly", "稍微瘦脸", "a slightly slimmer face"),
}
SUBJECT = {None: ("person", "人物"), "left": ("person on the left", "左边的人物"), "right": ("person on the right", "右边的人物"), "middle": ("person in the middle", "中间的人物")}


def join_en(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def join_zh(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else "、".join(phrases[:-1]) + "并" + phrases[-1]


def retouch_slots(operations: list[str], position: str | None) -> tuple[dict, dict]:
    en = join_en([OPERATION_WORDS[op][0] for op in operations])
    zh = join_zh([OPERATION_WORDS[op][1] for op in operations])
    subject_en, subject_zh = SUBJECT[position]
    return {"retouch": en, "Retouch": en[0].upper() + en[1:], "subject": subject_en}, {"retouch": zh, "subject": subject_zh}


def refine_prompt(operations: list[str]) -> str:
    return "a natural close-up portrait photo of a person with " + ", ".join(OPERATION_WORDS[op][2] for op in operations) + ", soft light"


class PortraitProposeStage(Stage):
    """One candidate per (face, retouch recipe); the mask is the skin plus the area a slimming
    warp moves."""

    name = "portrait_propose"
    reads = ("width", "height", "work.faces", "blob.skin:*", "source_sha256", "_unit", "_input")
    writes = ("sample_id", "blob.skin", "mask", "edit", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=8)
    fans_out = True
    tasks = (TASK,)

    def __init__(self, recipes: list[list[str]], recipes_per_face: int, slim_amount: float, min_skin_share: float, seed: int):
        for recipe in recipes:
            unknown = [op for op in recipe if op not in OPERATIONS]
            if unknown or "smooth" not in recipe:
                raise ValueError(f"retouch recipe {recipe}: every recipe smooths the skin and uses only {', '.join(OPERATIONS)}")
        self.recipes = [list(r) for r in recipes]
        self.recipes_per_face = recipes_per_face
        self.slim_amount = slim_amount
        self.min_skin_share = min_skin_share
        self.seed = seed

    def process_row(self, row: Row) -> list[Row]:
        rng = candidate_rng(row, self.seed)
        shape = (row["height"], row["width"])
        out: list[Row] = []
        for i, face in enumerate(work(row)["faces"]):
            skin_png = blob(row, f"skin:{i}")
            skin = decode_mask(skin_png)
            x, y, w, h = face["bbox"]
            share = skin.sum() / max(1.0, w * h)
            if share < self.min_skin_share:
                record_fallback(row, self.name, f"face {i}: skin covers {share:.0%} of its box, too little to retouch; left out")
                continue
            for recipe in draw(rng, self.recipes, self.recipes_per_face):
                mask = skin | (slim_region(face["bbox"], shape, self.slim_amount) if "slim" in recipe else False)
                slots_en, slots_zh = retouch_slots(recipe, face.get("position"))
                candidate = new_candidate(row, TASK, len(out), drop_blobs="skin:")
                set_blob(candidate, "skin", skin_png)
                candidate["mask"] = schema.image_value(encode_image(np.asarray(mask, np.uint8) * 255))
                candidate["edit"] = schema.dumps(
                    {
                        "type": TASK,
                        "object": "face",
                        "position": face.get("position"),
                        "box_xywh": face["bbox"],
                        "face_source": face["source"],
                        "eyes": face.get("eyes"),
                        "mouth": face.get("mouth"),
                        "retouch": recipe,
                        "prompt": refine_prompt(recipe),
                        "slots_en": slots_en,
                        "slots_zh": slots_zh,
                    }
                )
                record_stage(candidate, self.name, face_index=i, skin_share=round(float(share), 3))
                out.append(candidate)
        return out


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain; `score` runs it on rows made elsewhere too."""
    return PortraitGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    """cpu: Haar faces -> skin -> classical retouch. tiny and gpu: Florence-2 "face" grounding ->
    skin -> Flux-Fill refinement of the skin -> classical retouch on top."""
    task_cfg = cfg["tasks"][TASK]
    only = (TASK,)
    faces = task_cfg["faces"]
    retouch = task_cfg["retouch"]
    gpu = cfg["profile"] != "cpu"
    find = FaceFindStage(only, "florence2" if gpu else "haar", faces["max_faces"], faces["min_face_fraction"], faces["min_skin_fraction"], faces["min_neighbors"])
    propose = PortraitProposeStage(task_cfg["recipes"], task_cfg["recipes_per_face"], retouch["slim"], task_cfg["min_skin_share"], cfg["run"]["seed"])
    finish = [PortraitRetouchStage(only, retouch), TemplateInstructionStage(only, TEMPLATES_EN, TEMPLATES_ZH), gate(cfg)]
    if not gpu:
        return [find, PortraitSkinStage(only), propose, *finish]
    from stages.models.factory import make_stage

    return [FacePhrasesStage(only), make_stage("florence2", cfg, only), find, PortraitSkinStage(only), propose, make_stage("flux_fill", cfg, only), *finish]
