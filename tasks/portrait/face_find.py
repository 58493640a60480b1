"""The faces of an input: Florence-2's grounding of "face" (gpu, tiny) or the Haar cascade (cpu),
falling back to the other detector and then to annotated face boxes; each face checked for skin
colour (a face-like pattern on a cup is not a face) and given its eyes and mouth."""

from __future__ import annotations

from pipeline.core import schema
from pipeline.core.image_io import decode_image
from pipeline.core.rows import mark, record_fallback, record_stage, update_work, work
from pipeline.core.stage import Resources, Row, Stage
from stages.face_haar import detect_faces, detect_features, skin_fraction

FACE_LABEL = "face"


class FacePhrasesStage(Stage):
    """Asks the grounding model for faces only."""

    name = "face_phrases"
    reads = ()
    writes = ("work.phrases",)
    resources = Resources(num_cpus=0.1, batch_size=16)

    def __init__(self, tasks: tuple[str, ...]):
        self.tasks = tasks

    def process_row(self, row: Row) -> Row:
        update_work(row, phrases=[FACE_LABEL])
        return row


def _boxes_labelled_face(objects: list[dict] | None, source: str | None) -> list[list[float]]:
    return [o["bbox"] for o in objects or [] if o["label"].lower() == FACE_LABEL and (source is None or o.get("source") == source)]


class FaceFindStage(Stage):
    name = "face_find"
    reads = ("source_image", "work.objects")
    writes = ("work.faces", "status", "reason", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, tasks: tuple[str, ...], detector: str, max_faces: int, min_face_fraction: float, min_skin_fraction: float, min_neighbors: int):
        if detector not in ("haar", "florence2"):
            raise ValueError(f"unknown face detector {detector!r}")
        self.tasks = tasks
        self.detector = detector
        self.max_faces = max_faces
        self.min_face_fraction = min_face_fraction
        self.min_skin_fraction = min_skin_fraction
        self.min_neighbors = min_neighbors

    def _sources(self, rgb, objects):
        """(name, boxes) in the order they are tried."""
        haar = lambda: detect_faces(rgb, self.min_face_fraction, self.min_neighbors)  # noqa: E731
        grounded = lambda: _boxes_labelled_face(objects, "florence2")  # noqa: E731
        annotated = lambda: [b for b in _boxes_labelled_face(objects, None) if b not in grounded()]  # noqa: E731
        first = [("florence2", grounded), ("haar", haar)] if self.detector == "florence2" else [("haar", haar)]
        return first + [("annotations", annotated)]

    def process_row(self, row: Row) -> Row:
        rgb = decode_image(row["source_image"]["bytes"])
        objects = work(row).get("objects")
        short_side = min(rgb.shape[:2])
        tried = []
        for source, find in self._sources(rgb, objects):
            boxes = find()
            faces = [b for b in boxes if min(b[2], b[3]) >= self.min_face_fraction * short_side and skin_fraction(rgb, b) >= self.min_skin_fraction]
            tried.append(f"{source} kept {len(faces)} of {len(boxes)}")
            if faces:
                break
        else:
            return mark(row, schema.SKIPPED, f"{self.name}: no face found ({'; '.join(tried)} after the size and skin checks)")
        if len(tried) > 1:  # the first detector found nothing usable
            record_fallback(row, self.name, f"faces from {source} ({'; '.join(tried)})")
        chosen = []
        for box in faces[: self.max_faces]:
            box = [round(float(v), 2) for v in box]
            chosen.append({"label": FACE_LABEL, "bbox": box, "source": source, **detect_features(rgb, box)})
        for face in chosen:
            face["position"] = _position(face, chosen)
        update_work(row, faces=chosen)
        record_stage(row, self.name, detector=self.detector, source=source, found=len(faces), kept=len(chosen), tried=tried)
        return row


def _position(face: dict, faces: list[dict]) -> str | None:
    if len(faces) < 2:
        return None
    centres = sorted(f["bbox"][0] + f["bbox"][2] / 2 for f in faces)
    mine = face["bbox"][0] + face["bbox"][2] / 2
    return "left" if mine == centres[0] else "right" if mine == centres[-1] else "middle"
