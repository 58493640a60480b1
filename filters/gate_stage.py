"""The stage every gate runs as. It decodes the pair (and the mask, for edits that have one),
asks the gate's rule for its results, and records them with the verdict; a gate names itself
and implements only `results`."""

from __future__ import annotations

import numpy as np

from filters.gates import GateResult, record_gates
from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.stage import Resources, Row, Stage


class GateStage(Stage):
    resources = Resources(num_cpus=0.1, batch_size=16)
    masked = True  # False for whole-picture edits (their rows carry no mask): `results` gets None

    def __init__(self, tasks: tuple[str, ...], limits: dict):
        self.tasks = tasks
        self.limits = dict(limits)

    def process_row(self, row: Row) -> Row:
        source = decode_image(row["source_image"]["bytes"])
        target = decode_image(row["target_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"]) if self.masked else None
        edit = schema.loads(row.get("edit"))
        return record_gates(row, self.results(source, target, mask, edit, row))

    def results(self, source: np.ndarray, target: np.ndarray, mask: np.ndarray | None, edit: dict, row: Row) -> list[GateResult]:
        """The gate's rule on one decoded pair; `row` is there for what the rule reads beyond the
        pair (provenance, scratch blobs) or records."""
        raise NotImplementedError(f"{type(self).__name__} implements no gate rule")
