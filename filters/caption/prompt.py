"""The captioner's question. The model sees the source, then the target, then (for a local edit)
the mask, and the edit's metadata as JSON: what kind of edit it is and its words in English and
Chinese. The metadata block is machine-readable on purpose: a test server answers from it."""

from __future__ import annotations

import hashlib
import json

from filters.caption.terms import Term, hint_terms

REPLY_KEYS = ("imperative_en", "imperative_zh", "descriptive_en", "descriptive_zh", "source_caption", "target_caption")
METADATA_TAG = "Edit metadata (JSON): "

EDIT_KINDS = {
    "subject_remove": "an object was removed",
    "subject_add": "an object was added",
    "subject_replace": "one object was replaced by another",
    "background_change": "the background behind the subject was changed",
    "color_alteration": "an object's colour was changed",
    "material_modification": "an object's material was changed",
    "motion_change": "the subject moved (the target is a later frame of the same video)",
    "portrait_beautification": "a face was retouched",
    "tone_transformation": "the tone, light, season or weather of the whole picture was changed",
    "text_modification": "words written in the picture were changed",
    "style_transfer": "the whole picture was redrawn in another style",
}

PROMPT = (
    "You write training data for an image-editing model. The first image is the source picture, "
    "the second the target picture{mask_note}. Between them {kind}.\n"
    "{tag}{metadata}\n"
    "Write the editing instruction that turns the source into the target, as a user would ask "
    "for it, in two registers:\n"
    "- imperative: one short command, at most 15 words in English;\n"
    "- descriptive: one or two sentences that say which object, where it is, and what the result "
    "should look like.\n"
    "Write each in English and in Simplified Chinese.{required} Describe only what changed; do not "
    "mention masks, the first or second image, or this metadata.\n"
    "Also write a one-line English caption of the source picture and one of the target picture.\n"
    "Answer with one JSON object and nothing else, with exactly these keys:\n"
    '{{"imperative_en": "...", "imperative_zh": "...", "descriptive_en": "...", '
    '"descriptive_zh": "...", "source_caption": "...", "target_caption": "..."}}'
)
MASK_NOTE = ", and the third a mask that is white where the edit was allowed to change pixels"

STRICT_SUFFIX = (
    "\n\nYour previous answer could not be used: {reason}. Reply with only the JSON object: no "
    "prose, no code fences. Keys: {keys}. The _en fields and both captions are English with no "
    "Chinese characters; the _zh fields are Simplified Chinese.{required}"
)

PROMPT_HASH = hashlib.sha256((PROMPT + MASK_NOTE + STRICT_SUFFIX).encode()).hexdigest()[:16]


def _required(terms: list[Term]) -> str:
    terms = [t for t in terms if t.required]
    if not terms:
        return ""
    named = "; ".join(f'"{t.en}" / "{t.zh}"' for t in terms)
    return f" Every instruction must name, in its language: {named}."


def caption_prompt(task: str, edit: dict, terms: list[Term], with_mask: bool) -> str:
    metadata = {"task": task, "terms": hint_terms(task, edit), "required": [t.slot for t in terms if t.required]}
    return PROMPT.format(
        mask_note=MASK_NOTE if with_mask else "",
        kind=EDIT_KINDS.get(task, "the picture was edited"),
        tag=METADATA_TAG,
        metadata=json.dumps(metadata, ensure_ascii=False, sort_keys=True),
        required=_required(terms),
    )


def strict_prompt(prompt: str, reason: str, terms: list[Term]) -> str:
    return prompt + STRICT_SUFFIX.format(reason=reason, keys=", ".join(REPLY_KEYS), required=_required(terms))


def read_metadata(prompt: str) -> dict:
    """The metadata block back out of a prompt (for servers that answer from it, in tests)."""
    line = next(line for line in prompt.splitlines() if line.startswith(METADATA_TAG))
    return json.loads(line[len(METADATA_TAG) :])
