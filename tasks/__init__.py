"""Task recipes: which stages run in which order for each task, per profile."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from stages.base import Stage

# task id -> module in this package that implements it
RECIPES: dict[str, str] = {
    "color_alteration": "tasks.color",
}


class NotImplementedTask(NotImplementedError):
    pass


def is_implemented(task: str, profile: str) -> bool:
    if task not in RECIPES:
        return False
    return profile in import_module(RECIPES[task]).PROFILES


def build_stages(task: str, cfg: dict[str, Any]) -> list[Stage]:
    profile = cfg["profile"]
    if task not in RECIPES:
        raise NotImplementedTask(f"task {task!r} is not implemented yet")
    module = import_module(RECIPES[task])
    if profile not in module.PROFILES:
        raise NotImplementedTask(f"task {task!r} has no recipe for the {profile!r} profile yet (has: {', '.join(module.PROFILES)})")
    return module.build(cfg)
