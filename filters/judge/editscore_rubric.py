"""EditScore's rubric: the prompts its LoRA was trained on, its 0-25 scale, and the mapping onto
the judge's SC / PQ / O on 0-10.

Source checked: the `editscore` package 0.2 on PyPI (Apache-2.0; github.com/VectorSpaceLab/EditScore),
`editscore/__init__.py` (EditScore.__init__ builds the prompts, `evaluate` scores) and
`editscore/vie_prompts.py` (the text below, copied unchanged). SC joins the reasoning-first
context, the two-image editing rule and the SC rule; PQ the context and the PQ rule; in both every
"10" of the rules becomes the score range, 25 as its README's usage sets it. Each answer is
`{"reasoning": ..., "score": [a, b]}`; `evaluate` takes SC = min(SC pair) / 2.5, PQ = min(PQ
pair) / 2.5, O = sqrt(SC x PQ), which lands on VIEScore's 0-10 with no further scaling.

Where this differs from the package, on purpose: an answer that does not parse is never guessed
(the package draws a random score after two failures); it gets the judge's one stricter retry and
is then `unscored`, as every judge's answers are here."""

from __future__ import annotations

import hashlib
import json
import math

from filters.judge.rubric import Rubric
from filters.viescore import ScoreReply, declines_to_judge
from stages.models.mllm_json import extract_json_object

SCORE_RANGE = 25

_CONTEXT = """You are a professional digital artist. You will have to evaluate the effectiveness of the AI-generated image(s) based on given rules.
All the input images are AI-generated. All human in the images are AI-generated too. so you need not worry about the privacy confidentials.

IMPORTANT: You will have to give your output in this way (Keep your reasoning concise and short.):
{
"reasoning" : "...",
"score" : [...]
}
"""

_TWO_IMAGE_EDIT_RULE = """RULES:

Two images will be provided: The first being the original AI-generated image and the second being an edited version of the first.
The objective is to evaluate how successfully the editing instruction has been executed in the second image.

Note that sometimes the two images might look identical due to the failure of image edit.
"""

_SC_RULE = """
From scale 0 to 10: 
A score from 0 to 10 will be given based on the success of the editing. (0 indicates that the scene in the edited image does not follow the editing instruction at all. 10 indicates that the scene in the edited image follow the editing instruction text perfectly.)
A second score from 0 to 10 will rate the degree of overediting in the second image. (0 indicates that the scene in the edited image is completely different from the original. 10 indicates that the edited image can be recognized as a minimal edited yet effective version of original.)
Put the score in a list such that output score = [score1, score2], where 'score1' evaluates the editing success and 'score2' evaluates the degree of overediting.

Editing instruction: <instruction>
"""

_PQ_RULE = """RULES:

The image is an AI-generated image.
The objective is to evaluate how successfully the image has been generated.

From scale 0 to 10: 
A score from 0 to 10 will be given based on image naturalness. 
(
    0 indicates that the scene in the image does not look natural at all or give a unnatural feeling such as wrong sense of distance, or wrong shadow, or wrong lighting. 
    10 indicates that the image looks natural.
)
A second score from 0 to 10 will rate the image artifacts. 
(
    0 indicates that the image contains a large portion of distortion, or watermark, or scratches, or blurred faces, or unusual body parts, or subjects not harmonized. 
    10 indicates the image has no artifacts.
)
Put the score in a list such that output score = [naturalness, artifacts]
"""

SC_TEMPLATE = "\n".join([_CONTEXT, _TWO_IMAGE_EDIT_RULE, _SC_RULE.replace("10", str(SCORE_RANGE))])
PQ_TEMPLATE = "\n".join([_CONTEXT, _PQ_RULE.replace("10", str(SCORE_RANGE))])
# Added once to a prompt whose first answer could not be read (not in the package: it guesses instead).
STRICT_SUFFIX = (
    "\n\nYour previous reply could not be used ({reason}). Reply again with only the JSON object "
    '{"reasoning": "<text>", "score": [<number 0-25>, <number 0-25>]}: exactly two numbers, no other text.'
)
PROMPT_HASH = hashlib.sha256(json.dumps({"sc": SC_TEMPLATE, "pq": PQ_TEMPLATE, "strict_suffix": STRICT_SUFFIX}).encode()).hexdigest()


def sc_prompt(instruction: str) -> str:
    return SC_TEMPLATE.replace("<instruction>", " ".join(instruction.split()))


def pq_prompt() -> str:
    return PQ_TEMPLATE


def strict_prompt(prompt: str, reason: str) -> str:
    return prompt + STRICT_SUFFIX.replace("{reason}", reason)


def _number(item: object) -> float | None:
    if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
        return None
    return float(item)


def parse_reply(text: str | None) -> ScoreReply:
    """`{"reasoning": str, "score": [a, b]}` with two numbers in 0-25 (the scale is the model's;
    7.5 is a valid answer, "8", true and 26 are not). Scores stay on 0-25 here; `combine` maps them."""
    found = extract_json_object(text)
    if not found.ok:
        return ScoreReply(None, reason=found.reason)
    value = found.value
    raw = value.get("score")
    if not isinstance(raw, list) or len(raw) != 2:
        return ScoreReply(None, reason="'score' is not a list of two numbers")
    scores = [_number(item) for item in raw]
    if any(s is None for s in scores):
        return ScoreReply(None, reason=f"'score' holds something other than a number: {raw!r}")
    if any(not 0 <= s <= SCORE_RANGE for s in scores):  # type: ignore[operator]
        return ScoreReply(None, reason=f"'score' {raw!r} is outside 0-{SCORE_RANGE}")
    reasoning = value.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        return ScoreReply(None, reason="'reasoning' is not a string")
    if reasoning and declines_to_judge(reasoning):
        return ScoreReply(None, reasoning, reason="the reasoning declines to judge", refused=True)
    return ScoreReply((scores[0], scores[1]), reasoning)  # type: ignore[arg-type]


def combine(sc_scores: tuple[float, float], pq_scores: tuple[float, float]) -> dict[str, float]:
    """EditScore's `evaluate`: each pair's minimum divided by range / 10, O their geometric mean."""
    per_point = SCORE_RANGE / 10
    sc, pq = min(sc_scores) / per_point, min(pq_scores) / per_point
    return {"sc": round(sc, 4), "pq": round(pq, 4), "o": round(math.sqrt(sc * pq), 4)}


EDITSCORE = Rubric("editscore", sc_prompt, pq_prompt, strict_prompt, parse_reply, combine, PROMPT_HASH, SCORE_RANGE)
