"""What a judge asks and how it reads the answers: the two prompts (SC over source and edited
image, PQ over the edited image), the stricter retry, the reply parser and how two pairs of
sub-scores become SC, PQ and O on 0-10. The project's VIEScore wording is the default; a learned
judge trained on its own wording (EditScore) brings its own rubric, since a reward model answers
reliably only the prompts it was trained on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from filters import viescore
from filters.viescore import ScoreReply


@dataclass(frozen=True)
class Rubric:
    name: str
    sc_prompt: Callable[[str], str]  # instruction -> prompt shown after (source, edited)
    pq_prompt: Callable[[], str]  # prompt shown after (edited,)
    strict_prompt: Callable[[str, str], str]  # (prompt, why the answer was unusable) -> retry prompt
    parse: Callable[[str | None], ScoreReply]  # sub-scores on the rubric's own scale
    combine: Callable[[tuple, tuple], dict[str, float]]  # -> {"sc", "pq", "o"} on 0-10
    prompt_hash: str
    score_range: int = 10  # the scale the sub-scores are answered on

    def describe(self) -> dict[str, Any]:
        """Recorded with every judgement beside the backend's settings."""
        info: dict[str, Any] = {"prompt_hash": self.prompt_hash}
        if self.name != VIESCORE_NAME:  # the default rubric's records stay as they were
            info.update(rubric=self.name, score_range=self.score_range)
        return info


VIESCORE_NAME = "viescore"
VIESCORE = Rubric(
    VIESCORE_NAME,
    viescore.sc_prompt,
    viescore.pq_prompt,
    viescore.strict_prompt,
    viescore.parse_score_reply,
    viescore.combine,
    viescore.PROMPT_HASH,
)
