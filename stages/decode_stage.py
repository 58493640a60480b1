"""The first stage of every run: read the input's bytes, decode and validate them, and leave
the source image at the working resolution on the row."""

from __future__ import annotations

import hashlib
from dataclasses import asdict

from pipeline.core import schema
from pipeline.core.image_io import encode_image, encode_png
from pipeline.core.input_guard import UnsafeInput, check_local
from pipeline.core.rows import mark, record_stage, update_work
from pipeline.core.stage import Resources, Row, Stage
from stages.decode import DecodeLimits, InputRefused, decode_image, scale_objects
from stages.read_input import read_input_bytes
from stages.video import file_sha256, probe_video

SOURCE_FIELDS = ("caption", "url", "license")


def _record_input(row: Row, record: dict) -> None:
    """What the input says about the image (caption, original URL, licence) goes into provenance."""
    prov = schema.loads(row.get("provenance"))
    prov["input"] = {name: record[name] for name in ("uri", "key", *SOURCE_FIELDS) if record.get(name)}
    row["provenance"] = schema.dumps(prov)


class DecodeStage(Stage):
    name = "decode"
    reads = ("_input",)
    writes = ("source_sha256", "source_image", "width", "height", "work.objects", "work.video", "status", "reason", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=8)

    def __init__(self, limits: DecodeLimits, io: dict | None = None):
        self.limits = limits
        self.io = io  # how to reach a store (endpoint, timeouts); credentials come from the environment

    def process_row(self, row: Row) -> Row:
        record = schema.loads(row["_input"])
        _record_input(row, record)
        if record.get("problem"):  # found while planning: a broken tar member, a manifest row without a URI
            return mark(row, schema.ERROR, f"input: {record['problem']}")
        if record["kind"] == "video":
            return self._video(row, record)
        try:
            data = read_input_bytes(record, self.io, self.limits.max_bytes)
        except UnsafeInput as exc:  # refused unread: nothing of it (not even a hash) is kept
            return mark(row, schema.ERROR, f"decode: input refused: {exc}")
        except (OSError, ValueError) as exc:
            return mark(row, schema.ERROR, f"decode: cannot read input: {exc}")
        row["source_sha256"] = hashlib.sha256(data).hexdigest()
        try:
            decoded = decode_image(data, self.limits)
        except InputRefused as refused:
            return mark(row, refused.kind, f"decode: {refused.reason}")
        height, width = decoded.rgb.shape[:2]
        row["source_image"] = schema.image_value(encode_image(decoded.rgb), record["key"])
        row["width"], row["height"] = width, height
        objects = record.get("objects")
        update_work(
            row,
            objects=None if objects is None else scale_objects(objects, decoded.scale, (width, height)),
        )
        record_stage(
            row,
            self.name,
            original_size=list(decoded.original_size),
            working_size=[width, height],
            conversions=decoded.conversions,
            limits=asdict(self.limits),
        )
        return row

    def _video(self, row: Row, record: dict) -> Row:
        """A video's first frame stands as its source image; the motion recipe reads the frames."""
        try:
            check_local(record["path"], self.limits.max_bytes)
        except UnsafeInput as exc:
            return mark(row, schema.ERROR, f"decode: input refused: {exc}")
        except OSError as exc:
            return mark(row, schema.ERROR, f"decode: unreadable video: {exc}")
        try:
            info, first = probe_video(record["path"])
        except (OSError, ValueError) as exc:
            return mark(row, schema.ERROR, f"decode: unreadable video: {exc}")
        row["source_sha256"] = file_sha256(record["path"])
        try:
            decoded = decode_image(encode_png(first), self.limits)
        except InputRefused as refused:
            return mark(row, refused.kind, f"decode: {refused.reason}")
        height, width = decoded.rgb.shape[:2]
        row["source_image"] = schema.image_value(encode_image(decoded.rgb), record["key"])
        row["width"], row["height"] = width, height
        update_work(row, video=info, objects=record.get("objects"))
        record_stage(row, self.name, video=info, working_size=[width, height])
        return row
