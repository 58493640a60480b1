"""Reverse an edit: the target becomes the source and the source the target. A removal read
backwards is an addition whose target is a real photo, which is why it is made this way."""

from __future__ import annotations

from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage


class SwapSourceTargetStage(Stage):
    name = "swap_source_target"
    reads = ("source_image", "target_image")
    writes = ("source_image", "target_image", "provenance")
    resources = Resources(num_cpus=0.05, batch_size=32)

    def __init__(self, tasks: tuple[str, ...]):
        self.tasks = tasks

    def process_row(self, row: Row) -> Row:
        if not row.get("target_image"):
            raise ValueError("nothing to swap: the row has no target image")
        row["source_image"], row["target_image"] = row["target_image"], row["source_image"]
        # source_uri and source_sha256 still name the input photo, which is now the target
        record_stage(row, self.name, original_is="target_image")
        return row
