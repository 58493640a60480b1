"""The 11 task ids, their CLI aliases, and parsing of `--task`."""

from __future__ import annotations

TASK_IDS: tuple[str, ...] = (
    "subject_add",
    "subject_remove",
    "subject_replace",
    "background_change",
    "color_alteration",
    "material_modification",
    "motion_change",
    "portrait_beautification",
    "tone_transformation",
    "text_modification",
    "style_transfer",
)

ALIASES: dict[str, str] = {
    "add": "subject_add",
    "remove": "subject_remove",
    "replace": "subject_replace",
    "background": "background_change",
    "color": "color_alteration",
    "material": "material_modification",
    "motion": "motion_change",
    "portrait": "portrait_beautification",
    "tone": "tone_transformation",
    "text": "text_modification",
    "style": "style_transfer",
}

ALIAS_OF: dict[str, str] = {task: alias for alias, task in ALIASES.items()}


class UnknownTaskError(ValueError):
    pass


def parse_tasks(spec: str) -> list[str]:
    """Turn 'all', an alias, an id, or a comma list of them into task ids in canonical order."""
    wanted: set[str] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part == "all":
            wanted.update(TASK_IDS)
        elif part in TASK_IDS:
            wanted.add(part)
        elif part in ALIASES:
            wanted.add(ALIASES[part])
        else:
            known = ", ".join(["all", *ALIASES])
            raise UnknownTaskError(f"unknown task {part!r}; choose from: {known} (or the full ids)")
    if not wanted:
        raise UnknownTaskError("no task given")
    return [t for t in TASK_IDS if t in wanted]

# tasks whose inputs are videos; every other task takes still images
VIDEO_TASKS = frozenset({"motion_change"})
