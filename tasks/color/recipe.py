"""color_alteration: change the colour of one object, nothing else.

cpu profile: boxes from annotations -> GrabCut masks -> one candidate per object and target
colour -> Lab recolouring inside the mask -> bilingual template instruction -> colour gates."""

from __future__ import annotations

from typing import Any

from filters.color_gate import ColorGateStage
from filters.hue import hue_distance, region_hue, rgb_hue
from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import blob, record_stage, work
from pipeline.core.stage import Resources, Row, Stage
from stages.candidates import (
    candidate_rng,
    check_known,
    draw,
    new_candidate,
    object_mask_stages,
    object_phrases,
)
from stages.lab_recolor import LabRecolorStage
from stages.template_instructions import TemplateInstructionStage
from stages.vocabulary import COLORS

TASK = "color_alteration"
PROFILES = ("cpu", "tiny", "gpu")

TEMPLATES_EN = [
    "Change the colour of the {object} to {color}.",
    "Make the {object} {color}.",
    "Turn the {object} {color}.",
    "Recolour the {object} {color}.",
    "Paint the {object} {color}, keeping everything else as it is.",
]
TEMPLATES_ZH = [
    "把{object}的颜色改成{color}。",
    "将{object}变成{color}。",
    "把{object}染成{color}。",
    "让{object}变为{color}，其他部分保持不变。",
]


class ColorProposeStage(Stage):
    """One candidate per (object, target colour); colours close to the object's own hue are
    left out."""

    name = "color_propose"
    reads = ("source_image", "work.selected", "blob.mask:*", "source_sha256", "_unit", "_input")
    writes = ("sample_id", "mask", "edit", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=8)
    fans_out = True
    tasks = (TASK,)

    def __init__(self, palette: list[str], colors_per_object: int, hue_exclusion_deg: float, seed: int):
        check_known(palette, COLORS, "colours in the palette")
        self.palette = palette
        self.colors_per_object = colors_per_object
        self.hue_exclusion_deg = hue_exclusion_deg
        self.seed = seed

    def process_row(self, row: Row) -> list[Row]:
        rgb = decode_image(row["source_image"]["bytes"])
        rng = candidate_rng(row, self.seed)
        out: list[Row] = []
        for i, obj in enumerate(work(row)["selected"]):
            mask_png = blob(row, f"mask:{i}")
            hue, saturation = region_hue(rgb, decode_mask(mask_png))
            # an achromatic object (white, grey, black) can take any colour
            options = [
                c for c in self.palette if saturation < 0.15 or hue_distance(hue, rgb_hue(COLORS[c][2])) > self.hue_exclusion_deg
            ]
            for color in draw(rng, options, self.colors_per_object):
                en_color, zh_color, target_rgb = COLORS[color]
                en_object, zh_object = object_phrases(obj)
                candidate = new_candidate(row, TASK, len(out), drop_blobs="mask:")
                candidate["mask"] = schema.image_value(mask_png)
                candidate["edit"] = schema.dumps(
                    {
                        "type": TASK,
                        "object": obj["label"],
                        "position": obj.get("position"),
                        "box_xywh": obj["bbox"],
                        "color": color,
                        "target_rgb": list(target_rgb),
                        "target_hue": round(rgb_hue(target_rgb), 2),
                        "source_hue": round(hue, 2),
                        "source_saturation": round(saturation, 3),
                        "prompt": f"a {en_color} {obj['label']}",
                        "slots_en": {"object": en_object, "color": en_color},
                        "slots_zh": {"object": zh_object, "color": zh_color},
                    }
                )
                record_stage(candidate, self.name, object_index=i, palette=self.palette)
                out.append(candidate)
        return out


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain; `score` runs it on rows made elsewhere too."""
    return ColorGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    """cpu: annotations -> GrabCut -> Lab recolouring. tiny and gpu (the seed's chain):
    Florence-2 grounding -> SAM-2 -> ZoeDepth -> SD3.5 depth ControlNet, pasted inside the mask."""
    task_cfg = cfg["tasks"][TASK]
    only = (TASK,)
    objects = object_mask_stages(cfg, TASK)
    propose = ColorProposeStage(task_cfg["palette"], task_cfg["colors_per_object"], task_cfg["hue_exclusion_deg"], cfg["run"]["seed"])
    finish = [TemplateInstructionStage(only, TEMPLATES_EN, TEMPLATES_ZH), gate(cfg)]
    if cfg["profile"] == "cpu":
        return [*objects, propose, LabRecolorStage(only, task_cfg["lightness_shift"], task_cfg["feather_px"]), *finish]
    from stages.models.factory import make_stage

    return [*objects, make_stage("zoedepth", cfg, only), propose, make_stage("controlnet_depth", cfg, only), *finish]
