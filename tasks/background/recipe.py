"""background_change: the main subject stays, everything behind it becomes a new scene.

cpu profile: the largest annotated object and the objects inside its box -> GrabCut masks, joined -> candidates, one per backdrop (skies,
studio walls, tinted textures, other bundled photos) -> the subject, lightly colour-matched,
composited over the backdrop with a soft edge -> bilingual template instruction -> gates.
tiny and gpu (the seed's chain): Florence-2 grounds the annotated labels (or detects everything)
-> the largest object and the objects inside its box -> SAM-2 -> SigLIP tags (scenes the picture already shows are left out) ->
Flux-Fill on the INVERTED subject mask with the scene's prompt."""

from __future__ import annotations

from typing import Any

import numpy as np

from filters.background_gate import BackgroundGateStage
from pipeline.core import schema
from pipeline.core.image_io import encode_image
from pipeline.core.rows import record_stage, work
from pipeline.core.stage import Resources, Row, Stage
from stages.candidates import (
    candidate_rng,
    draw,
    grabcut_stage,
    input_key,
    mask_methods,
    new_candidate,
    object_phrases,
)
from stages.grounding_phrases import GroundingPhrasesStage
from stages.select_objects import SelectObjectsStage
from stages.template_instructions import TemplateInstructionStage
from tasks.background.bank import file_sha256
from tasks.background.composite import BackgroundCompositeStage
from tasks.background.scenes import BACKDROPS, SCENES
from tasks.background.subject import SubjectGroupStage, subject_mask

TASK = "background_change"
PROFILES = ("cpu", "tiny", "gpu")

TEMPLATES_EN = [
    "Change the background to {scene}.",
    "Replace the background with {scene}.",
    "Put the {subject} in front of {scene}.",
    "Keep the {subject} as it is and make the background {scene}.",
    "Swap the background for {scene}.",
]
TEMPLATES_ZH = [
    "把背景换成{scene}。",
    "将背景替换为{scene}。",
    "把{subject}放到{scene}的背景前。",
    "保持{subject}不变，把背景改成{scene}。",
    "背景换成{scene}。",
]

class BackgroundProposeStage(Stage):
    """One candidate per new background, `per_input` of them: backdrops the cpu path can render
    (never a photo of the input itself), or scenes for a generator (never one the tagger says the
    picture already shows). Each candidate's mask marks the background, the region to redraw."""

    name = "background_propose"
    reads = ("_input", "work.selected", "blob.mask:*", "work.tags?", "provenance", "source_sha256", "_unit")
    writes = ("sample_id", "mask", "edit", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=8)
    fans_out = True
    tasks = (TASK,)

    def __init__(self, seed: int, per_input: int, options: list[str], render_backdrops: bool):
        catalogue = BACKDROPS if render_backdrops else SCENES
        unknown = [o for o in options if o not in catalogue]
        if unknown:
            raise ValueError(f"unknown {'backdrops' if render_backdrops else 'scenes'}: {unknown}; known: {', '.join(catalogue)}")
        self.seed = seed
        self.per_input = per_input
        self.options = list(options)
        self.render_backdrops = render_backdrops

    def _choices(self, row: Row, key: str, state: dict) -> list[str]:
        if self.render_backdrops:
            own = key.rsplit("/", 1)[-1]
            return [
                o for o in self.options
                if BACKDROPS[o].kind != "photo" or (BACKDROPS[o].source != own and file_sha256(BACKDROPS[o].source) != row.get("source_sha256"))
            ]
        tags = {t["label"].lower() for t in state.get("tags") or []}
        return [o for o in self.options if not tags & set(SCENES[o].tags)]

    def process_row(self, row: Row) -> list[Row]:
        key = input_key(row)
        state = work(row)
        subject = state["selected"][0]
        methods = mask_methods(row)
        subject_region = subject_mask(row, methods)
        background_png = encode_image((~subject_region).astype(np.uint8) * 255)
        choices = self._choices(row, key, state)
        picks = draw(candidate_rng(row, self.seed), choices, self.per_input)
        en_subject, zh_subject = object_phrases(subject)
        out = []
        for i, option in enumerate(picks):
            scene = BACKDROPS[option] if self.render_backdrops else SCENES[option]
            edit = {
                "type": TASK,
                "subject": subject["label"],
                "position": subject.get("position"),
                "box_xywh": subject["bbox"],
                "mask_marks": "background",  # the subject is everything outside the mask
                "subject_fraction": round(float(subject_region.mean()), 4),
                "subject_parts": [o["label"] for o in state["selected"][1:]],
                "subject_mask_method": methods[0] if methods else None,
                "scene": option,
                "scene_en": scene.en,
                "scene_zh": scene.zh,
                "slots_en": {"scene": scene.en, "subject": en_subject},
                "slots_zh": {"scene": scene.zh, "subject": zh_subject},
            }
            if self.render_backdrops:
                edit.update(backdrop=option, backdrop_kind=scene.kind, backdrop_source=scene.source, backdrop_license=scene.license)
            else:
                edit["prompt"] = scene.prompt
            candidate = new_candidate(row, TASK, i, drop_blobs="mask:")
            candidate["mask"] = schema.image_value(background_png)
            candidate["edit"] = schema.dumps(edit)
            record_stage(candidate, self.name, scene=option, offered=choices)
            out.append(candidate)
        return out


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain; `score` runs it on rows made elsewhere too."""
    return BackgroundGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    task_cfg = cfg["tasks"][TASK]
    only = (TASK,)
    never_subject = task_cfg["skip_labels"] + task_cfg["scenery_labels"]
    select = SelectObjectsStage(only, 1, task_cfg["min_object_fraction"], task_cfg["max_object_fraction"], never_subject)
    group = SubjectGroupStage(only, task_cfg["part_min_inside"], task_cfg["scenery_labels"])
    finish = [TemplateInstructionStage(only, TEMPLATES_EN, TEMPLATES_ZH), gate(cfg)]
    if cfg["profile"] == "cpu":
        return [
            select,
            group,
            grabcut_stage(cfg, only),
            BackgroundProposeStage(cfg["run"]["seed"], task_cfg["per_input"], task_cfg["backdrops"], render_backdrops=True),
            BackgroundCompositeStage(only, task_cfg["feather_px"], task_cfg["colour_match"]),
            *finish,
        ]
    from stages.models.factory import make_stage

    return [
        GroundingPhrasesStage(only, task_cfg["scenery_labels"]),
        make_stage("florence2", cfg, only),
        select,
        group,
        make_stage("sam2", cfg, only),
        make_stage("siglip", cfg, only),
        BackgroundProposeStage(cfg["run"]["seed"], task_cfg["per_input"], task_cfg["scenes"], render_backdrops=False),
        make_stage("flux_fill", cfg, only),
        *finish,
    ]
