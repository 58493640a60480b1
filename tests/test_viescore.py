"""VIEScore's prompts and the reading of replies (filters/viescore.py): what is a score, what is
unreadable or a refusal, how SC, PQ and O combine. The judge that sends them: test_judge.py."""

import hashlib
import json
import math

import numpy as np
import pytest

from filters import viescore
from filters.viescore import (
    combine,
    match_source_size,
    parse_score_reply,
    sc_prompt,
    strict_prompt,
)

# -- reading replies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, scores, reasoning",
    [
        ('{"score": [8, 6], "reasoning": "clear edit"}', (8, 6), "clear edit"),
        ('Here you go:\n```json\n{"score": [0, 10], "reasoning": "r"}\n```\nThanks', (0, 10), "r"),
        ('Verdict {"score": [7, 7]} end', (7, 7), None),  # reasoning may be left out
        ('{"score": [8.0, 9], "reasoning": ""}', (8, 9), ""),  # a whole number written as a float
    ],
)
def test_readable_replies(reply, scores, reasoning):
    parsed = parse_score_reply(reply)
    assert parsed.ok and parsed.scores == scores and parsed.reasoning == reasoning
    assert all(type(s) is int for s in parsed.scores)


@pytest.mark.parametrize(
    "reply, reason",
    [
        ('{"score": [11, 5], "reasoning": "x"}', "outside 0-10"),
        ('{"score": [5, -1], "reasoning": "x"}', "outside 0-10"),
        ('{"score": [7.5, 8], "reasoning": "x"}', "not a whole number"),
        ('{"score": ["8", 8], "reasoning": "x"}', "not a whole number"),
        ('{"score": [true, 8], "reasoning": "x"}', "not a whole number"),
        ('{"score": [NaN, 8]}', "not a whole number"),
        ('{"scores": [8, 8], "reasoning": "x"}', "missing key 'score'"),
        ('{"score": [8], "reasoning": "x"}', "holds 1 numbers, not 2"),
        ('{"score": [8, 8, 8], "reasoning": "x"}', "holds 3 numbers, not 2"),
        ('{"score": 8, "reasoning": "x"}', "not a list"),
        ('{"score": [8, 8], "reasoning": 3}', "'reasoning' is not a string"),
        ("The edit looks right; I give it 8 out of 10.", "no JSON object"),
        ('{"score": [8, 7], "reason', "does not parse"),
        ("", "empty reply"),
        (None, "empty reply"),
    ],
)
def test_unreadable_replies_say_why_and_carry_no_scores(reply, reason):
    parsed = parse_score_reply(reply)
    assert not parsed.ok and parsed.scores is None and reason in parsed.reason


@pytest.mark.parametrize(
    "reasoning, declines",
    [
        ("I cannot see the images you mention.", True),
        ("I'm sorry, but I can't help with rating this.", True),
        ("Unfortunately no image was provided, so I am unable to rate it.", True),
        ("I am unable to evaluate the provided images.", True),
        ("I can't see any change to the cup, so the edit failed.", False),
        ("The cup is red now; nothing else moved.", False),
    ],
)
def test_scores_beside_a_refusal_are_not_a_judgement(reasoning, declines):
    parsed = parse_score_reply(json.dumps({"score": [0, 0], "reasoning": reasoning}))
    assert parsed.refused is declines and parsed.ok is not declines
    assert (parsed.scores is None) is declines


def test_sc_pq_o_arithmetic():
    assert combine((8, 6), (9, 4)) == {"sc": 6.0, "pq": 4.0, "o": round(math.sqrt(24), 4)}
    assert combine((10, 10), (10, 10))["o"] == 10.0
    assert combine((0, 9), (10, 10)) == {"sc": 0.0, "pq": 10.0, "o": 0.0}  # one failed side sinks O
    assert combine((3, 9), (9, 3))["o"] == 3.0


def test_prompts_and_their_hash():
    prompt = sc_prompt('turn the {cup}\n red """now"""')
    assert 'Instruction: """turn the {cup} red "now""""' in prompt and "{instruction}" not in prompt
    assert prompt.index("first image is the original") < prompt.index("Instruction:")
    assert '{"score": [' in viescore.pq_prompt() and "Instruction" not in viescore.pq_prompt()
    stricter = strict_prompt(prompt, "missing key 'score'")
    assert stricter.startswith(prompt) and "(missing key 'score')" in stricter and "{reason}" not in stricter
    templates = {"sc": viescore.SC_TEMPLATE, "pq": viescore.PQ_TEMPLATE, "strict_suffix": viescore.STRICT_SUFFIX}
    assert viescore.PROMPT_HASH == hashlib.sha256(json.dumps(templates, sort_keys=True).encode()).hexdigest()


def test_edited_image_is_resized_to_the_source():
    source = np.zeros((40, 60, 3), np.uint8)
    edited = np.full((80, 100, 3), 77, np.uint8)
    resized = match_source_size(edited, source)
    assert resized.shape == (40, 60, 3) and (resized == 77).all()
    assert match_source_size(source, source) is source
