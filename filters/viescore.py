"""VIEScore in editing mode: the two judge prompts, reading the judge's JSON answer, and the
SC / PQ / O arithmetic. No model here: these are plain functions that tests call on hand-written
replies.

Two calls per triplet. SC (semantic consistency) shows the source, then the edited image, then
the instruction; PQ (perceptual quality) shows the edited image alone. Each answer is
`{"score": [a, b], "reasoning": "..."}` with whole numbers 0-10; SC = min of its pair, PQ = min
of its pair, O = sqrt(SC * PQ). An answer that does not fit, or whose reasoning declines to judge,
is reported with a reason and never guessed at: the reference implementation's random fallback
has no place here."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from stages.models.mllm_json import extract_json_object
from stages.models.openai_client import is_refusal

SC, PQ = "sc", "pq"
SCORE_MIN, SCORE_MAX = 0, 10

# The rubric is worded for this project; its meaning follows VIEScore's editing mode.
SC_TEMPLATE = (
    "You are checking the work of an image editor. The first image is the original picture. "
    "The second image is the same picture after the editor tried to carry out the instruction "
    "quoted below.\n"
    "Give two ratings, each a whole number from 0 to 10:\n"
    "1. Edit success: how completely the second image carries out the instruction. 0 means the "
    "instruction was not carried out at all; 10 means it was carried out exactly as asked.\n"
    "2. Restraint: how much of the original picture was left as it was, apart from what the "
    "instruction asks for. 0 means the second image is a different picture altogether; 10 means "
    "nothing changed except what the edit needed.\n"
    "Rate only these two things, not the picture's beauty or technical quality.\n"
    'Instruction: """{instruction}"""\n'
    "Reply with one JSON object and nothing else, in this form:\n"
    '{"score": [<edit success>, <restraint>], "reasoning": "<one or two sentences>"}'
)
PQ_TEMPLATE = (
    "You are checking the quality of a picture produced by an image editor.\n"
    "Give two ratings, each a whole number from 0 to 10:\n"
    "1. Naturalness: does the picture look like one real, coherent scene? 0 means the lighting, "
    "shadows, perspective or sizes of things are plainly wrong; 10 means it looks entirely "
    "natural.\n"
    "2. Cleanliness: is the picture free of defects? 0 means heavy distortion, smears, blotches, "
    "watermarks, or malformed faces, hands or lettering; 10 means no defect can be seen.\n"
    "Reply with one JSON object and nothing else, in this form:\n"
    '{"score": [<naturalness>, <cleanliness>], "reasoning": "<one or two sentences>"}'
)
# Added once to a prompt whose first answer could not be read.
STRICT_SUFFIX = (
    "\n\nYour previous reply could not be used ({reason}). Reply again with only the JSON object "
    '{"score": [<whole number 0-10>, <whole number 0-10>], "reasoning": "<text>"}: exactly two '
    "whole numbers from 0 to 10, no other text, no code fences."
)

TEMPLATES = {SC: SC_TEMPLATE, PQ: PQ_TEMPLATE, "strict_suffix": STRICT_SUFFIX}
# Recorded with every judgement: a change to any template changes the hash.
PROMPT_HASH = hashlib.sha256(json.dumps(TEMPLATES, sort_keys=True).encode()).hexdigest()


def sc_prompt(instruction: str) -> str:
    # plain replacement: the templates hold JSON braces, and an instruction may hold braces too
    return SC_TEMPLATE.replace("{instruction}", " ".join(instruction.split()).replace('"""', '"'))


def pq_prompt() -> str:
    return PQ_TEMPLATE


def strict_prompt(prompt: str, reason: str) -> str:
    return prompt + STRICT_SUFFIX.replace("{reason}", reason)


@dataclass(frozen=True)
class ScoreReply:
    """One call's answer: two sub-scores and the reasoning, or why there are none."""

    scores: tuple[int, int] | None
    reasoning: str | None = None
    reason: str | None = None
    refused: bool = False  # the answer declines to judge: asking again more strictly will not help

    @property
    def ok(self) -> bool:
        return self.scores is not None


def parse_score_reply(text: str | None) -> ScoreReply:
    """The judge's JSON answer checked strictly: a `score` list of exactly two whole numbers in
    0-10 (8.0 counts as 8; 7.5, "8", true and 11 do not) and, when present, a string
    `reasoning`."""
    found = extract_json_object(text)
    if not found.ok:
        return ScoreReply(None, reason=found.reason)
    value = found.value
    if "score" not in value:
        return ScoreReply(None, reason="missing key 'score'")
    raw = value["score"]
    if not isinstance(raw, list):
        return ScoreReply(None, reason=f"'score' is not a list ({type(raw).__name__})")
    if len(raw) != 2:
        return ScoreReply(None, reason=f"'score' holds {len(raw)} numbers, not 2")
    scores = []
    for item in raw:
        number = _whole_number(item)
        if number is None:
            return ScoreReply(None, reason=f"'score' item {item!r} is not a whole number")
        if not SCORE_MIN <= number <= SCORE_MAX:
            return ScoreReply(None, reason=f"'score' item {number} is outside {SCORE_MIN}-{SCORE_MAX}")
        scores.append(number)
    reasoning = value.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        return ScoreReply(None, reason="'reasoning' is not a string")
    if reasoning and declines_to_judge(reasoning):
        # scores beside "I cannot see the images" are filler, typically zeros: never a judgement
        return ScoreReply(None, reasoning, reason="the reasoning declines to judge", refused=True)
    return ScoreReply((scores[0], scores[1]), reasoning)


_NO_IMAGE = re.compile(
    r"\b(?:can ?not|can'?t|unable to|not able to)\s+(?:see|view|access|open|load|evaluate|assess|judge|rate)\s+"
    r"(?:the|any|these|those|this|both)?\s*(?:provided\s+|attached\s+)?(?:image|images|picture|pictures|photo|photos)\b"
    r"|\bno (?:image|images|picture|pictures) (?:was|were|is|are|has been|have been) (?:provided|attached|shown|given|included)",
    re.IGNORECASE,
)


def declines_to_judge(reasoning: str) -> bool:
    """A refusal, or a statement that the judge could not see or judge the pictures. Reasoning
    about the picture's content ("I can't see any change to the cup") is not one."""
    text = reasoning.replace("\u2019", "'")
    return is_refusal(text) or bool(_NO_IMAGE.search(text))


def _whole_number(item: object) -> int | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    if isinstance(item, float) and math.isfinite(item) and item.is_integer():
        return int(item)
    return None


def combine(sc_scores: tuple[int, int], pq_scores: tuple[int, int]) -> dict[str, float]:
    """SC, PQ and O from the two pairs of sub-scores."""
    sc = float(min(sc_scores))
    pq = float(min(pq_scores))
    return {"sc": sc, "pq": pq, "o": round(math.sqrt(sc * pq), 4)}


def match_source_size(edited: np.ndarray, source: np.ndarray) -> np.ndarray:
    """The edited image at the source's size, as GEdit-Bench judges it."""
    height, width = source.shape[:2]
    if edited.shape[:2] == (height, width):
        return edited
    return np.asarray(Image.fromarray(np.ascontiguousarray(edited)).resize((width, height), Image.BICUBIC))
