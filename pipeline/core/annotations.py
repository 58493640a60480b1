"""COCO instances annotations: boxes and licences per image file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any


class AnnotationError(ValueError):
    pass


@dataclass
class ImageAnnotations:
    objects: list[dict[str, Any]] = field(default_factory=list)  # {"label", "bbox": [x, y, w, h]}
    license: str | None = None


@dataclass
class AnnotationIndex:
    by_name: dict[str, ImageAnnotations]

    def lookup(self, relative_key: str, basename_counts: dict[str, int]) -> ImageAnnotations | None:
        """Match `file_name` against the input's path relative to the input folder; a bare file
        name also matches a nested input when no other input shares that name."""
        found = self.by_name.get(relative_key)
        if found is not None:
            return found
        base = PurePosixPath(relative_key).name
        if basename_counts.get(base) == 1:
            return self.by_name.get(base)
        return None


def load_coco(path: str | Path) -> AnnotationIndex:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AnnotationError(f"annotations file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "images" not in data:
        raise AnnotationError(f"{path}: not COCO instances format (no 'images' list)")
    categories = {c["id"]: c["name"] for c in data.get("categories", [])}
    licenses = {lic["id"]: lic.get("name") for lic in data.get("licenses", []) if "id" in lic}
    by_id: dict[Any, ImageAnnotations] = {}
    by_name: dict[str, ImageAnnotations] = {}
    for image in data["images"]:
        try:
            entry = ImageAnnotations(license=licenses.get(image.get("license")))
            by_id[image["id"]] = entry
            by_name[str(PurePosixPath(image["file_name"]))] = entry
        except KeyError as exc:
            raise AnnotationError(f"{path}: an image entry lacks {exc}") from None
    for ann in data.get("annotations", []):
        entry = by_id.get(ann.get("image_id"))
        bbox = ann.get("bbox")
        if entry is None or not bbox or len(bbox) != 4:
            continue
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            continue
        label = categories.get(ann.get("category_id"), "object")
        entry.objects.append({"label": label, "bbox": [x, y, w, h]})
    return AnnotationIndex(by_name=by_name)
