"""Rows for the bundled sample photos as decode leaves them, for tests that run a task's recipe
on a real photo."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
from PIL import Image

from pipeline.core import schema
from pipeline.core.annotations import load_coco
from pipeline.core.image_io import encode_png
from pipeline.core.inputs import SAMPLES_ANNOTATIONS, samples_dir


def sample_row(name: str, task: str, long_side: int) -> dict:
    """A pending row for a bundled photo as decode leaves it: scaled, its boxes scaled alike, the
    source hash of the file's bytes."""
    path = samples_dir() / name
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    scale = long_side / max(rgb.shape[:2])
    rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    objects = [{**o, "bbox": [v * scale for v in o["bbox"]]} for o in load_coco(SAMPLES_ANNOTATIONS).by_name[name].objects]
    return {
        "sample_id": f"{name}-{task}", "task": task, "status": schema.PENDING, "_unit": f"0:{name}:{task}", "_unit_rows": 1,
        "_shard": 0, "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "_input": schema.dumps({"key": name, "index": 0}), "source_image": schema.image_value(encode_png(rgb), name),
        "width": rgb.shape[1], "height": rgb.shape[0], "_work": schema.dumps({"objects": objects}),
    }
