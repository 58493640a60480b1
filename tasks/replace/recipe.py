"""subject_replace: one object becomes another kind of object; nothing else changes.

cpu profile: boxes from annotations -> GrabCut masks -> one candidate per (object, donor) with a
donor cut out of another sample photo -> the old object filled in, the donor Poisson-blended into
its box -> bilingual template instruction -> gates.
tiny and gpu (the seed's chain): SigLIP tags + Qwen2.5-VL choose the object and its stand-in (the
replacement table when the answer is unusable) -> Florence-2 grounds it -> SAM-2 -> Flux-Fill
draws the stand-in inside the object's box."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from filters.replace_gate import ReplaceGateStage
from pipeline.core import schema
from pipeline.core.fields import RowView, requiring
from pipeline.core.image_io import decode_mask, encode_image
from pipeline.core.rows import blob, record_stage, set_blob, work
from pipeline.core.stage import Resources, Row, Stage
from stages.candidates import (
    box_mask,
    candidate_rng,
    draw,
    grabcut_stage,
    input_key,
    new_candidate,
    object_phrases,
    select_stage,
)
from stages.template_instructions import TemplateInstructionStage
from tasks.replace.choice import ChosenObjectSelectStage, ReplaceChoiceStage
from tasks.replace.object_bank import donor_bank, donors_for
from tasks.replace.poisson_paste import OTHER_OBJECTS, PoissonPasteStage
from tasks.replace.vocabulary import noun_zh, with_article

TASK = "subject_replace"
PROFILES = ("cpu", "tiny", "gpu")

TEMPLATES_EN = [
    "Replace the {old} with {new}.",
    "Swap the {old} for {new}.",
    "Turn the {old} into {new}.",
    "Put {new} where the {old} is.",
    "Take away the {old} and put {new} in its place.",
]
TEMPLATES_ZH = [
    "把{old}换成{new}。",
    "将{old}替换为{new}。",
    "用{new}替换{old}。",
    "把{old}变成{new}。",
    "去掉{old}，在原来的位置放上{new}。",
]


def aspect_change(a: float, b: float) -> float:
    """How many times wider (or narrower) one shape is than the other, at least 1."""
    return math.exp(abs(math.log(a / b)))


def replace_edit(obj: dict, new: str, new_zh: str | None, prompt_template: str, **extra: Any) -> dict:
    en_old, zh_old = object_phrases(obj)
    return {
        "type": TASK,
        "object": obj["label"],
        "position": obj.get("position"),
        "box_xywh": obj["bbox"],
        "new_object": new,
        "prompt": prompt_template.format(new=with_article(new)),
        "slots_en": {"old": en_old, "new": with_article(new)},
        # a stand-in the vocabulary cannot name in Chinese keeps its English name
        "slots_zh": {"old": zh_old, "new": new_zh or new},
        "new_zh_known": new_zh is not None,
        **extra,
    }


class ReplaceProposeStage(Stage):
    """cpu (`bank` given): one candidate per selected object and donor, donors from other
    pictures whose shape is close to the object's box. Model path: one candidate, the chosen
    object and stand-in, masked by the object's box or its mask."""

    name = "replace_propose"
    reads = ("work.selected", "blob.mask:*", "work.replace_choice?", "width", "height", "source_sha256", "_unit", "_input")
    writes = ("sample_id", "mask", "edit", "blob.other_objects", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=8)
    fans_out = True
    tasks = (TASK,)

    def __init__(
        self,
        seed: int,
        prompt_template: str,
        bank: dict[str, Any] | None = None,
        donors_per_object: int = 2,
        max_aspect_change: float = 2.0,
        max_upscale: float = 2.0,
        model_region: str = "box",
    ):
        if model_region not in ("box", "mask"):
            raise ValueError(f"model_region must be box or mask, not {model_region!r}")
        self.seed = seed
        self.prompt_template = prompt_template
        self.bank_params = dict(bank) if bank is not None else None
        self.donors_per_object = donors_per_object
        self.max_aspect_change = max_aspect_change
        self.max_upscale = max_upscale
        self.model_region = model_region
        self.bank: tuple | None = None
        if bank is None:  # the model path replaces what replace_choice chose
            self.reads = requiring(self.reads, "work.replace_choice")

    def setup(self) -> None:
        if self.bank_params is not None:
            self.bank = donor_bank(**self.bank_params)

    def process_row(self, row: Row) -> list[Row]:
        if self.bank_params is not None and self.bank is None:
            self.setup()
        key = input_key(row)
        state = work(row)
        proposals = self._donor_edits(row, key, state) if self.bank is not None else self._model_edits(row)
        out = []
        for i, (mask, edit, protect) in enumerate(proposals):
            candidate = new_candidate(row, TASK, i, drop_blobs="mask:")
            if protect is not None:
                set_blob(candidate, OTHER_OBJECTS, protect)
            candidate["mask"] = schema.image_value(mask)
            candidate["edit"] = schema.dumps(edit)
            record_stage(candidate, self.name, object=edit["object"], new_object=edit["new_object"])
            out.append(candidate)
        return out

    def _donor_edits(self, row: Row, key: str, state: dict) -> list[tuple[bytes, dict, bytes | None]]:
        rng = candidate_rng(row, self.seed)
        proposals = []
        masks = [decode_mask(blob(row, f"mask:{i}")) for i in range(len(state["selected"]))]
        for i, obj in enumerate(state["selected"]):
            others = [m for j, m in enumerate(masks) if j != i]
            # the paste stage must not fill in a neighbour it was not asked to replace
            protect = encode_image(np.logical_or.reduce(others).astype(np.uint8) * 255) if others else None
            box_aspect = obj["bbox"][2] / obj["bbox"][3]
            # close in shape, and big enough not to blur when scaled to the box
            usable = [
                d for d in donors_for(self.bank, row.get("source_sha256"), key, obj["label"])
                if aspect_change(d.aspect, box_aspect) <= self.max_aspect_change
                and max(obj["bbox"][2:]) <= self.max_upscale * max(d.rgb.shape[:2])
            ]
            # one donor per kind of object, so two candidates never say the same thing
            by_label = {}
            for donor in sorted(usable, key=lambda d: (aspect_change(d.aspect, box_aspect), d.id)):
                by_label.setdefault(donor.label.lower(), donor)
            picks = draw(rng, sorted(by_label.values(), key=lambda d: d.id), self.donors_per_object)
            for donor in picks:
                edit = replace_edit(
                    obj, donor.label.lower(), noun_zh(donor.label), self.prompt_template, method="donor_paste",
                    donor={"id": donor.id, "source": donor.source, "label": donor.label, "license": donor.license},
                )
                proposals.append((blob(row, f"mask:{i}"), edit, protect))
        return proposals

    def _model_edits(self, row: Row) -> list[tuple[bytes, dict, bytes | None]]:
        view = RowView(row).work  # a missing key names the stage that should have written it
        obj, choice = view.selected[0], view.replace_choice
        mask_png = blob(row, "mask:0")
        if self.model_region == "box":
            # room for a stand-in of another shape; the mask still bounds it where it reaches further
            region = box_mask(obj["bbox"], (row["height"], row["width"])) | decode_mask(mask_png)
            mask_png = encode_image(region.astype(np.uint8) * 255)
        edit = replace_edit(
            obj, choice["new"], choice.get("new_zh"), self.prompt_template, method="flux_fill",
            chosen_by=choice["by"], region=self.model_region,
        )
        return [(mask_png, edit, None)]


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain; `score` runs it on rows made elsewhere too."""
    return ReplaceGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    task_cfg = cfg["tasks"][TASK]
    only = (TASK,)
    fractions = (task_cfg["min_object_fraction"], task_cfg["max_object_fraction"])
    finish = [TemplateInstructionStage(only, TEMPLATES_EN, TEMPLATES_ZH), gate(cfg)]
    if cfg["profile"] == "cpu":
        grabcut = cfg["stages"]["grabcut"]
        donors = task_cfg["donors"]
        bank = {
            "labels": tuple(donors["labels"]),
            "max_side": donors["max_side"],
            "iterations": grabcut["iterations"],
            "min_mask_fraction": donors["min_mask_fraction"],
            "max_box_fraction": donors["max_box_fraction"],
        }
        return [
            select_stage(task_cfg, only),
            grabcut_stage(cfg, only),
            ReplaceProposeStage(
                cfg["run"]["seed"], task_cfg["prompt_template"], bank, donors["per_object"], donors["max_aspect_change"],
                donors["max_upscale"],
            ),
            PoissonPasteStage(
                only, bank, donors["fill_grow_px"], donors["keep_colour"], donors["edge_px"], donors["cover"], donors["fill_method"],
                donors["fill_box_ellipse"],
            ),
            *finish,
        ]
    from stages.models.factory import make_stage

    return [
        make_stage("siglip", cfg, only),
        make_stage("qwen2_5_vl", cfg, only),
        ReplaceChoiceStage(only, task_cfg["skip_labels"], *fractions, cfg["run"]["seed"]),
        make_stage("florence2", cfg, only),
        ChosenObjectSelectStage(only, *fractions),
        make_stage("sam2", cfg, only),
        ReplaceProposeStage(cfg["run"]["seed"], task_cfg["prompt_template"], model_region=task_cfg["model_region"]),
        make_stage("flux_fill", cfg, only),
        *finish,
    ]
