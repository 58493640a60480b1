"""A multimodal model words the change between a pair's two frames as an editing instruction.

The model sees both frames side by side in one picture (earlier on the left), so any function
with `QwenVL.generate`'s signature serves: the loaded Qwen2.5-VL, an OpenAI-compatible server, or
a test's scripted replies. A reply must be JSON with both instructions, each in its language, and
must not name the opposite of the measured direction. One stricter retry; after that the template
instruction already on the row stays and the fallback is recorded."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image
from pipeline.core.rows import record_fallback, record_stage
from pipeline.core.stage import Row
from stages.models.mllm_json import ParsedReply, parse_reply
from stages.models.qwen2_5_vl import GenerateFn, QwenStage, reply_text
from tasks.motion.direction import opposite

DESCRIPTION_SCHEMA = {"subject": str, "instruction_en": str, "instruction_zh": str}
MAX_CHARS = 200
GAP_PX = 8

DESCRIBE_PROMPT = (
    "This picture shows two frames of one video side by side: the left frame first, the right "
    "frame {seconds:.2f} s later. Something moves between them{hint}. Write the editing "
    "instruction that turns the left frame into the right one: say what moves and how (which way, "
    "and whether it slides, jumps, falls, comes closer or goes away).\n"
    "Answer with one JSON object and nothing else, with exactly these keys:\n"
    '{{"subject": "<what moves, a short noun>", "instruction_en": "<the instruction in English>", '
    '"instruction_zh": "<the same instruction in Simplified Chinese>"}}'
)

STRICT_SUFFIX = (
    "\n\nYour previous answer could not be used: {reason}. Reply with only the JSON object: no "
    "prose, no code fences, no comments. Keys: subject (a short noun), instruction_en (one English "
    "sentence), instruction_zh (one sentence in Simplified Chinese)."
)

_CJK = re.compile(r"[\u4e00-\u9fff]")
# words that name one side of a direction; a reply naming only the opposite side contradicts the flow
_WORDS_EN = {"left": r"\bleft(wards?)?\b", "right": r"\bright(wards?)?\b", "up": r"\bup(wards?)?\b", "down": r"\bdown(wards?)?\b"}
_WORDS_ZH = {"left": r"[向往朝]左", "right": r"[向往朝]右", "up": r"[向往朝]上", "down": r"[向往朝]下"}


def side_by_side(left: np.ndarray, right: np.ndarray, gap_px: int = GAP_PX) -> np.ndarray:
    """Both frames in one picture, a white bar between them."""
    height = max(left.shape[0], right.shape[0])
    out = np.full((height, left.shape[1] + gap_px + right.shape[1], 3), 255, np.uint8)
    out[: left.shape[0], : left.shape[1]] = left
    out[: right.shape[0], left.shape[1] + gap_px :] = right
    return out


def _contradiction(text: str, direction: str | None, words: dict[str, str]) -> str | None:
    if not direction:
        return None
    for side in direction.split("_"):
        other = opposite(side)
        if re.search(words[other], text, re.IGNORECASE) and not re.search(words[side], text, re.IGNORECASE):
            return f"names '{other}' but the subject moved {side}"
    return None


def read_motion_description(reply: Any, direction: str | None) -> ParsedReply:
    """A reply checked against DESCRIPTION_SCHEMA, each instruction in its own language and
    short, and neither naming the opposite of the measured direction."""
    text, failure = reply_text(reply)
    if failure:
        return ParsedReply(None, failure)
    parsed = parse_reply(text, DESCRIPTION_SCHEMA)
    if not parsed.ok:
        return parsed
    en, zh = parsed.value["instruction_en"].strip(), parsed.value["instruction_zh"].strip()
    if _CJK.search(en) or len(re.findall(r"[A-Za-z]+", en)) < 2:
        return ParsedReply(None, "instruction_en is not an English sentence")
    if not _CJK.search(zh):
        return ParsedReply(None, "instruction_zh has no Chinese")
    if max(len(en), len(zh)) > MAX_CHARS:
        return ParsedReply(None, f"an instruction is longer than {MAX_CHARS} characters")
    wrong = _contradiction(en, direction, _WORDS_EN) or _contradiction(zh, direction, _WORDS_ZH)
    if wrong:
        return ParsedReply(None, f"the instruction {wrong}")
    return ParsedReply({"subject": parsed.value["subject"].strip(), "instruction_en": en, "instruction_zh": zh})


def describe_prompt(edit: dict) -> str:
    hint = f" (the {edit['object']})" if edit.get("object_source") == "annotation" else ""
    return DESCRIBE_PROMPT.format(seconds=edit["seconds_apart"], hint=hint)


class MotionDescribeStage(QwenStage):
    """Replaces the row's template instructions with the model's, when its reply is usable. It
    loads the same Qwen2.5-VL as the choose-an-edit stage but asks another question of two
    frames, so it is a pool of its own."""

    name = "mllm_describe_motion"
    reads = ("source_image", "target_image", "edit", "instruction_en", "instruction_zh")
    writes = ("instruction_en", "instruction_zh", "edit", "provenance")

    def __init__(
        self,
        model_ref: str,
        revision: str | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        tasks: tuple[str, ...] | None = None,
        generate: GenerateFn | None = None,
    ):
        self.model_ref, self.revision = model_ref, revision
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.tasks = tasks
        self._generate = generate
        self._info: dict[str, Any] = {"model": model_ref, "revision": revision}

    def process_batch(self, rows: list[Row]) -> list[Row]:
        if self._generate is None:
            self.setup()
        images = [side_by_side(decode_image(r["source_image"]["bytes"]), decode_image(r["target_image"]["bytes"])) for r in rows]
        edits = [schema.loads(r["edit"]) for r in rows]
        prompts = [describe_prompt(e) for e in edits]
        results = self._ask(images, prompts, edits)
        attempts = [1] * len(rows)
        first = list(results)
        again = [i for i, r in enumerate(results) if not r.ok]
        if again:
            strict = [prompts[i] + STRICT_SUFFIX.format(reason=results[i].reason) for i in again]
            for i, result in zip(again, self._ask([images[i] for i in again], strict, [edits[i] for i in again])):
                results[i], attempts[i] = result, 2
        for row, result, tries, initial in zip(rows, results, attempts, first):
            reasons = [r.reason for r in (initial, result) if not r.ok]
            if result.ok:
                template = {"template_en": row.get("instruction_en"), "template_zh": row.get("instruction_zh")}
                row["instruction_en"], row["instruction_zh"] = result.value["instruction_en"], result.value["instruction_zh"]
                edit = schema.loads(row["edit"])
                if edit.get("object_source") != "annotation":  # the model's name beats the generic noun
                    row["edit"] = schema.dumps(dict(edit, object=result.value["subject"], object_source="mllm"))
                record_stage(row, self.name, instruction_source="mllm", subject=result.value["subject"], **template)
            else:
                record_fallback(row, self.name, f"no usable description after a stricter retry ({result.reason}); kept the template instruction")
                record_stage(row, self.name, instruction_source="template")
            record_stage(row, self.name, attempts=tries, rejected_replies=reasons, **self._info)
        return rows

    def _ask(self, images: list[np.ndarray], prompts: list[str], edits: list[dict]) -> list[ParsedReply]:
        replies = list(self._generate(images, prompts, self.max_new_tokens, self.temperature))
        if len(replies) != len(prompts):
            raise RuntimeError(f"{self.name}: {len(replies)} replies for {len(prompts)} prompts")
        return [read_motion_description(reply, edit.get("direction")) for reply, edit in zip(replies, edits)]
