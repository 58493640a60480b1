import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.core.inputs import InputError, discover
from stages.read_input import read_input_bytes


def _png(path, size=(80, 64)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(path)


def _cfg(path, **kw):
    return {"path": str(path), "annotations": None, "license": None, "image_column": None, "license_column": "license", **kw}


def test_folder_is_recursive_case_insensitive_and_stable(tmp_path):
    for name in ["b.PNG", "a.jpg", "nested/c.WebP", "nested/deeper/d.tiff", "notes.txt", "e.gif", "f.Bmp", "g.jpeg"]:
        if name.endswith(".txt"):
            (tmp_path / name).write_text("x")
        else:
            fmt = {".webp": "WEBP", ".tiff": "TIFF", ".gif": "GIF", ".bmp": "BMP", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(
                name[name.rfind(".") :].lower(), "PNG"
            )
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (80, 64)).save(tmp_path / name, format=fmt)
    keys = [r["key"] for r in discover(_cfg(tmp_path))]
    assert keys == ["a.jpg", "b.PNG", "e.gif", "f.Bmp", "g.jpeg", "nested/c.WebP", "nested/deeper/d.tiff"]
    record = discover(_cfg(tmp_path))[5]
    assert record["uri"].endswith("nested/c.WebP")


def test_coco_boxes_and_licences_match_relative_paths(tmp_path):
    _png(tmp_path / "nested" / "a.png")
    _png(tmp_path / "b.png")
    _png(tmp_path / "other" / "b.png")
    coco = {
        "licenses": [{"id": 7, "name": "CC-BY-4.0"}],
        "images": [
            {"id": 1, "file_name": "nested/a.png", "license": 7},
            {"id": 2, "file_name": "b.png"},
        ],
        "categories": [{"id": 3, "name": "cup"}],
        "annotations": [{"image_id": 1, "category_id": 3, "bbox": [1, 2, 30, 40]}, {"image_id": 2, "category_id": 3, "bbox": [0, 0, 0, 5]}],
    }
    ann = tmp_path / "coco.json"
    ann.write_text(json.dumps(coco))
    records = {r["key"]: r for r in discover(_cfg(tmp_path, annotations=str(ann), license="unknown-default"))}
    assert records["nested/a.png"]["objects"] == [{"label": "cup", "bbox": [1.0, 2.0, 30.0, 40.0]}]
    assert records["nested/a.png"]["license"] == "CC-BY-4.0"
    assert records["b.png"]["objects"] == []  # annotated, but its only box is empty
    assert records["other/b.png"]["objects"] is None  # not annotated: no match by path
    assert records["other/b.png"]["license"] == "unknown-default"


def test_parquet_input_reads_image_column_and_licence(tmp_path):
    import io

    blobs = []
    for value in (10, 200):
        buf = io.BytesIO()
        Image.fromarray(np.full((64, 64, 3), value, np.uint8)).save(buf, format="PNG")
        blobs.append({"bytes": buf.getvalue(), "path": f"img{value}.png"})
    table = pa.table({"image": blobs, "license": ["CC0-1.0", None]})
    path = tmp_path / "in.parquet"
    pq.write_table(table, path, row_group_size=1)
    records = discover(_cfg(path, license="fallback"))
    assert [r["license"] for r in records] == ["CC0-1.0", "fallback"]
    assert records[1]["uri"].endswith("in.parquet#row=1&path=img200.png")
    second = Image.open(io.BytesIO(read_input_bytes(records[1])))
    assert np.asarray(second)[0, 0, 0] == 200


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="input not found"):
        discover(_cfg(tmp_path / "nope"))


def test_samples_are_annotated_and_licensed():
    records = discover(_cfg("samples"))
    images = [r for r in records if r["kind"] == "file"]
    videos = [r for r in records if r["kind"] == "video"]
    assert len(images) >= 5 and len(videos) == 1
    assert all(r["objects"] and r["license"] for r in images)
    assert videos[0]["license"] and videos[0]["key"].endswith(".mp4")
    assert all(r["uri"].startswith("samples/") for r in records)


def test_videos_are_inputs_of_their_own_kind(tmp_path):
    from pipeline.core.sample_clip import render_clip

    render_clip(tmp_path / "Clip.MP4")
    _png(tmp_path / "still.png")
    kinds = {r["key"]: r["kind"] for r in discover(_cfg(tmp_path))}
    assert kinds == {"Clip.MP4": "video", "still.png": "file"}
