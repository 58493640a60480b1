"""One stage list for a run of several tasks, in which a model that two tasks use with the same
settings is one actor pool serving both.

Each task's stages keep their order. A light stage only touches its own task's rows, so where it
sits among other tasks' stages does not matter; a shared model stage is the one point where two
tasks' chains must meet."""

from __future__ import annotations

from pipeline.core.stage import Stage


def merge_task_stages(per_task: list[list[Stage]]) -> list[Stage]:
    merged: list[Stage] = []
    for stages in per_task:
        cursor = 0  # everything of this task so far sits before this index
        for stage in stages:
            key = getattr(stage, "share_key", None)
            found = next((j for j in range(cursor, len(merged)) if key is not None and getattr(merged[j], "share_key", None) == key), None)
            if found is None:
                merged.insert(cursor, stage)
                cursor += 1
                continue
            merged[found] = merged[found].merged_with(stage)  # default: the union of the tasks
            cursor = found + 1
    return merged
