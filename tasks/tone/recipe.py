"""tone_transformation: change the whole picture's tone, or repair it.

cpu profile: candidates drawn from the grades (warm, cool, film, black and white, vintage, HDR),
the exposure and contrast adjustments, and the restorations (a haze, rain, low-light or noise
defect synthesised on the photo, which becomes the source; the clean photo is the target) ->
bilingual template instruction -> gates (the named statistic moved the stated way).
tiny and gpu: the same, plus seasons and times of day drawn by SD3.5 with the canny ControlNet.
The classical rows get their verdict before the generator runs, so it sees only scene rows."""

from __future__ import annotations

from typing import Any

from filters.tone_gate import STATISTICS, ToneGateStage
from pipeline.core import schema
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.candidates import candidate_rng, check_known, draw, new_candidate
from stages.template_instructions import TemplateInstructionStage
from tasks.tone.render import CLASSICAL, CLASSICAL_TONE_EDITS, ToneRenderStage
from tasks.tone.vocabulary import SLOT_OF_KIND, TONE_EDITS

TASK = "tone_transformation"
PROFILES = ("cpu", "tiny", "gpu")

# one group per slot: a row's slot picks the phrasings that fit its kind of edit
TEMPLATES_EN = [
    "Give the photo {look}.",
    "Apply {look} to the image.",
    "Grade this picture with {look}.",
    "Edit the photo so it has {look}.",
    "Make the photo {change}.",
    "Edit the picture so it is {change}.",
    "Adjust the image to be {change}.",
    "Could you make this image {change}?",
    "Please {restore}.",
    "Could you {restore}?",
    "Edit the photo to {restore}.",
    "Clean up this picture: {restore}.",
    "Make it {when}.",
    "Change the scene to {when}.",
    "Turn this into {when}.",
    "Transform the scene into {when}, keeping the layout.",
]
TEMPLATES_ZH = [
    "给照片加上{look}。",
    "把图片调成{look}。",
    "将这张照片处理成{look}。",
    "为图片应用{look}。",
    "把照片调得{change}。",
    "让这张图片{change}一些。",
    "将画面调整得{change}。",
    "请把图片处理得{change}。",
    "请{restore}。",
    "帮我{restore}。",
    "把这张照片处理一下，{restore}。",
    "麻烦{restore}，其他保持不变。",
    "把场景变成{when}。",
    "将画面改为{when}。",
    "让这里变成{when}的样子。",
    "把这张图改成{when}，布局保持不变。",
]


class ToneProposeStage(Stage):
    """Per input: some grades/adjustments, some restorations and (where a generator runs) some
    scenes, each drawn without repeats."""

    name = "tone_propose"
    reads = ("source_sha256", "_unit", "_input")
    writes = ("sample_id", "mask", "edit", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=8)
    fans_out = True
    tasks = (TASK,)

    def __init__(self, groups: list[tuple[list[str], int]], seed: int, renderable: frozenset[str] | None = None):
        names = [n for group, _ in groups for n in group]
        check_known(names, TONE_EDITS, "tone edits")
        unmeasured = [(n, stat) for n in names for stat, _ in TONE_EDITS[n].expect if stat not in STATISTICS]
        if unmeasured:
            raise ValueError(f"tone edits expect statistics the gate cannot measure: {unmeasured}")
        if renderable is not None and set(names) - renderable:
            raise ValueError(f"tone edits with no classical backend: {sorted(set(names) - renderable)}")
        self.groups = groups
        self.seed = seed

    def process_row(self, row: Row) -> list[Row]:
        rng = candidate_rng(row, self.seed)
        out: list[Row] = []
        for names, count in self.groups:
            for name in draw(rng, names, count):
                edit = TONE_EDITS[name]
                slot = SLOT_OF_KIND[edit.kind]
                candidate = new_candidate(row, TASK, len(out))
                candidate["mask"] = None  # the whole picture changes
                candidate["edit"] = schema.dumps(
                    {
                        "type": TASK,
                        "name": name,
                        "kind": edit.kind,
                        "backend": edit.backend,
                        "expect": [list(e) for e in edit.expect],
                        "seed": rng.randrange(2**31),
                        "prompt": edit.prompt,
                        "slots_en": {slot: edit.en},
                        "slots_zh": {slot: edit.zh},
                    }
                )
                record_stage(candidate, self.name, drawn_from=names)
                out.append(candidate)
        return out


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain (every backend's rows); `score` runs it on rows
    made elsewhere too. The generator's chain also runs it early on the classical rows alone."""
    return ToneGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    task_cfg = cfg["tasks"][TASK]
    only = (TASK,)
    groups = [(task_cfg["grades"], task_cfg["grades_per_image"]), (task_cfg["restorations"], task_cfg["restorations_per_image"])]
    instruct = TemplateInstructionStage(only, TEMPLATES_EN, TEMPLATES_ZH)
    seed = cfg["run"]["seed"]
    if cfg["profile"] == "cpu":
        return [ToneProposeStage(groups, seed, CLASSICAL_TONE_EDITS), ToneRenderStage(only), instruct, gate(cfg)]
    from stages.models.factory import make_stage

    groups.append((task_cfg["scenes"], task_cfg["scenes_per_image"]))
    return [
        ToneProposeStage(groups, seed),
        ToneRenderStage(only),
        instruct,
        ToneGateStage(only, task_cfg["gate"], backends=(CLASSICAL,)),  # done before the generator
        make_stage("controlnet_canny", cfg, only),
        gate(cfg),
    ]
