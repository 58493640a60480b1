"""style_transfer: redraw the whole picture in another style, keeping its composition.

cpu profile: one candidate per chosen style -> OpenCV non-photorealistic rendering (stylization,
dodge sketch, oil painting, cartoon, k-means posters, pixel art, line art) -> bilingual template
instruction -> gates (the drawing still follows the source's edges; the picture changed).
tiny and gpu: the same candidates with a style prompt -> SD3.5 canny ControlNet over the whole
picture (no mask) -> the same instruction and gates."""

from __future__ import annotations

from typing import Any

from filters.style_gate import StyleGateStage
from pipeline.core import schema
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.candidates import (
    candidate_rng,
    check_known,
    check_renderable,
    draw,
    new_candidate,
)
from stages.template_instructions import TemplateInstructionStage
from tasks.style.effects import RENDERERS
from tasks.style.render import StyleRenderStage
from tasks.style.vocabulary import STYLES, style_names, style_prompt

TASK = "style_transfer"
PROFILES = ("cpu", "tiny", "gpu")

TEMPLATES_EN = [
    "Turn this photo into {style}.",
    "Redraw the picture as {style}.",
    "Make the image look like {style}.",
    "Restyle the whole picture as {style}, keeping the composition.",
    "Convert the image into {style}.",
]
TEMPLATES_ZH = [
    "把这张照片变成{style}。",
    "将图片重新绘制成{style}风格。",
    "让这张图看起来像{style}。",
    "把整幅画面转换为{style}，构图保持不变。",
]


class StyleProposeStage(Stage):
    """One candidate per style drawn for this input, from the styles the backend can render."""

    name = "style_propose"
    reads = ("source_sha256", "_unit", "_input")
    writes = ("sample_id", "mask", "edit", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=8)
    fans_out = True
    tasks = (TASK,)

    def __init__(self, styles: list[str], styles_per_image: int, seed: int, renderable: set[str] | None = None):
        check_known(styles, STYLES, "styles")
        check_renderable(styles, renderable, "styles with no classical renderer")
        self.styles = styles
        self.styles_per_image = styles_per_image
        self.seed = seed

    def process_row(self, row: Row) -> list[Row]:
        rng = candidate_rng(row, self.seed)
        out: list[Row] = []
        for style in draw(rng, self.styles, self.styles_per_image):
            en, zh = style_names(style)
            candidate = new_candidate(row, TASK, len(out))
            candidate["mask"] = None  # the whole picture changes
            candidate["edit"] = schema.dumps(
                {
                    "type": TASK,
                    "style": style,
                    "prompt": style_prompt(style),
                    "slots_en": {"style": en},
                    "slots_zh": {"style": zh},
                }
            )
            record_stage(candidate, self.name, styles=self.styles)
            out.append(candidate)
        return out


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain; `score` runs it on rows made elsewhere too."""
    return StyleGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    task_cfg = cfg["tasks"][TASK]
    only = (TASK,)
    finish = [TemplateInstructionStage(only, TEMPLATES_EN, TEMPLATES_ZH), gate(cfg)]
    seed = cfg["run"]["seed"]
    if cfg["profile"] == "cpu":
        propose = StyleProposeStage(task_cfg["classical_styles"], task_cfg["styles_per_image"], seed, set(RENDERERS))
        return [propose, StyleRenderStage(only), *finish]
    from stages.models.factory import make_stage

    propose = StyleProposeStage(task_cfg["styles"], task_cfg["styles_per_image"], seed)
    return [propose, make_stage("controlnet_canny", cfg, only), *finish]
