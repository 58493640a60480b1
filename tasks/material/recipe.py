"""material_modification: remake one object in another material, nothing else.

cpu profile: boxes from annotations -> GrabCut masks -> one candidate per object and material ->
the material's texture times the object's own smoothed shading, inside the mask -> bilingual
template instruction -> gates (outside untouched, shading kept, surface detail replaced).
tiny and gpu: Florence-2 grounding -> SAM-2 -> ZoeDepth -> SD3.5 depth ControlNet prompted with
"{object} made of {material}", pasted back inside the mask -> the same instruction and gates."""

from __future__ import annotations

from typing import Any

from filters.material_gate import MaterialGateStage
from pipeline.core import schema
from pipeline.core.rows import blob, provenance, record_fallback, record_stage, work
from pipeline.core.stage import Resources, Row, Stage
from stages.candidates import (
    candidate_rng,
    check_known,
    check_renderable,
    draw,
    new_candidate,
    object_mask_stages,
    object_phrases,
)
from stages.template_instructions import TemplateInstructionStage
from tasks.material.swap import CLASSICAL_MATERIALS, MaterialSwapStage
from tasks.material.vocabulary import MATERIALS, material_names, material_prompt

TASK = "material_modification"
PROFILES = ("cpu", "tiny", "gpu")

TEMPLATES_EN = [
    "Make the {object} out of {material}.",
    "Turn the {object} into {material}.",
    "Change the material of the {object} to {material}.",
    "Make the {object} look like it is made of {material}.",
    "Remake the {object} in {material}, leaving everything else as it is.",
]
TEMPLATES_ZH = [
    "把{object}变成{material}材质。",
    "将{object}的材质换成{material}。",
    "让{object}看起来像是用{material}做的。",
    "把{object}改成{material}制成的，其他部分保持不变。",
]


class MaterialProposeStage(Stage):
    """One candidate per (object, material), materials drawn per object without repeats."""

    name = "material_propose"
    reads = ("provenance", "work.selected", "blob.mask:*", "source_sha256", "_unit", "_input")
    writes = ("sample_id", "mask", "edit", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=8)
    fans_out = True
    tasks = (TASK,)

    def __init__(self, materials: list[str], materials_per_object: int, seed: int, renderable: frozenset[str] | None = None):
        check_known(materials, MATERIALS, "materials")
        check_renderable(materials, renderable, "materials with no classical texture")
        self.materials = materials
        self.materials_per_object = materials_per_object
        self.seed = seed

    def process_row(self, row: Row) -> list[Row]:
        rng = candidate_rng(row, self.seed)
        # a texture painted over GrabCut's stand-in ellipse is a blob, not the object remade
        methods = provenance(row).get("stages", {}).get("grabcut_mask", {}).get("methods") or []
        selected = work(row)["selected"]
        for i in [i for i, method in enumerate(methods) if method == "ellipse"]:
            record_fallback(row, self.name, f"object {i} ({selected[i]['label']}) left out: its mask is only an ellipse")
        out: list[Row] = []
        for i, obj in enumerate(selected):
            if i < len(methods) and methods[i] == "ellipse":
                continue
            mask_png = blob(row, f"mask:{i}")
            en_object, zh_object = object_phrases(obj)
            for material in draw(rng, self.materials, self.materials_per_object):
                en_material, zh_material = material_names(material)
                candidate = new_candidate(row, TASK, len(out), drop_blobs="mask:")  # the depth map stays for the ControlNet
                candidate["mask"] = schema.image_value(mask_png)
                candidate["edit"] = schema.dumps(
                    {
                        "type": TASK,
                        "object": obj["label"],
                        "position": obj.get("position"),
                        "box_xywh": obj["bbox"],
                        "material": material,
                        "texture_seed": rng.randrange(2**31),
                        "prompt": material_prompt(obj["label"], material),
                        "slots_en": {"object": en_object, "material": en_material},
                        "slots_zh": {"object": zh_object, "material": zh_material},
                    }
                )
                record_stage(candidate, self.name, object_index=i, materials=self.materials)
                out.append(candidate)
        return out


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain; `score` runs it on rows made elsewhere too."""
    return MaterialGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    task_cfg = cfg["tasks"][TASK]
    only = (TASK,)
    objects = object_mask_stages(cfg, TASK)
    finish = [TemplateInstructionStage(only, TEMPLATES_EN, TEMPLATES_ZH), gate(cfg)]
    seed = cfg["run"]["seed"]
    if cfg["profile"] == "cpu":
        return [
            *objects,
            MaterialProposeStage(task_cfg["classical_materials"], task_cfg["materials_per_object"], seed, CLASSICAL_MATERIALS),
            MaterialSwapStage(only, task_cfg["texture_scale"], task_cfg["shading_sigma"], task_cfg["feather_px"]),
            *finish,
        ]
    from stages.models.factory import make_stage

    return [
        *objects,
        make_stage("zoedepth", cfg, only),
        MaterialProposeStage(task_cfg["materials"], task_cfg["materials_per_object"], seed),
        make_stage("controlnet_depth", cfg, only),
        *finish,
    ]
