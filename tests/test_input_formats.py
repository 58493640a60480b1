"""Inputs in the layouts of other tools, read from local files: img2dataset's WebDataset
shards (and the damage a shard may carry), Hugging Face style Parquet datasets, manifests."""

import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.core.inputs import InputError, discover
from stages.decode import DecodeLimits
from stages.decode_stage import DecodeStage
from stages.read_input import read_input_bytes
from tests import input_makers as mk


def _cfg(path, **kw):
    return {"path": str(path), "format": "auto", "annotations": None, "license": None, "image_column": None,
            "license_column": "license", "caption_columns": ["caption", "text"], "url_columns": ["url"], "uri_column": None, **kw}


def _decode(record):
    row = {"_input": json.dumps({**record, "index": 0}), "status": "pending"}
    return DecodeStage(DecodeLimits(working_size=128)).process_row(row)


def test_img2dataset_shard_is_read_member_by_member_with_one_error_row_per_damage(tmp_path):
    (tmp_path / "00000.tar").write_bytes(mk.img2dataset_tar())
    (tmp_path / "00000.parquet").write_bytes(mk.img2dataset_meta())  # img2dataset's metadata: passed over
    (tmp_path / "00000_stats.json").write_text("{}")
    records = discover(_cfg(tmp_path))
    assert [r["key"] for r in records] == [
        "00000.tar/000000000.jpg", "00000.tar/000000001.jpg", "00000.tar/000000002.jpg",
        "00000.tar/000000003", "00000.tar/000000004.jpg", "00000.tar/000000005.jpg",
    ]
    first = records[0]
    assert (first["caption"], first["url"], first["license"]) == ("a photo number 0", "https://example.org/img/0.jpg", "CC-BY-4.0")
    assert read_input_bytes(first) == mk.jpeg(0)  # the member's bytes, by offset
    rows = {r["key"].split("/")[1]: _decode(r) for r in records}
    assert {k: row["status"] for k, row in rows.items()} == {
        "000000000.jpg": "pending", "000000001.jpg": "error", "000000002.jpg": "pending",
        "000000003": "error", "000000004.jpg": "error", "000000005.jpg": "pending",
    }
    assert rows["000000001.jpg"]["reason"].startswith("decode: not a readable image")
    assert "has no image" in rows["000000003"]["reason"]
    assert "000000004.json" in rows["000000004.jpg"]["reason"] and "not valid metadata" in rows["000000004.jpg"]["reason"]
    provenance = json.loads(rows["000000000.jpg"]["provenance"])["input"]
    assert provenance == {"uri": first["uri"], "key": first["key"], "caption": "a photo number 0",
                          "url": "https://example.org/img/0.jpg", "license": "CC-BY-4.0"}


def test_a_damaged_member_header_is_one_error_row_and_the_tar_goes_on(tmp_path):
    data = bytearray(mk.img2dataset_tar(damaged=False))
    header = tarfile.open(fileobj=io.BytesIO(bytes(data))).getmember("000000002.jpg").offset
    data[header : header + 100] = b"\x07" * 100  # its name and size fields: the checksum fails
    (tmp_path / "shard.tar").write_bytes(bytes(data))
    records = discover(_cfg(tmp_path / "shard.tar"))
    problems = [r for r in records if r.get("problem")]
    assert [r["key"] for r in problems] == [f"shard.tar/@{header}", "shard.tar/000000002"]
    assert "damaged member header" in problems[0]["problem"]
    fine = [r["key"] for r in records if not r.get("problem")]
    assert fine == ["shard.tar/000000000.jpg", "shard.tar/000000001.jpg", "shard.tar/000000003.jpg",
                    "shard.tar/000000004.jpg", "shard.tar/000000005.jpg"]
    assert read_input_bytes(records[-1]) == mk.jpeg(5)


def test_hf_parquet_dataset_of_many_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train-00000-of-00002.parquet").write_bytes(mk.hf_parquet(3, 100))
    (data / "train-00001-of-00002.parquet").write_bytes(mk.hf_parquet(2, 200))
    (tmp_path / "README.md").write_text("a dataset card")
    records = discover(_cfg(tmp_path))
    assert [r["key"] for r in records] == [f"data/train-00000-of-00002.parquet#{i}" for i in range(3)] + [
        f"data/train-00001-of-00002.parquet#{i}" for i in range(2)
    ]
    assert records[4]["caption"] == "hub caption 201" and records[4]["license"] == "CC0-1.0"
    assert records[4]["uri"].endswith("train-00001-of-00002.parquet#row=1&path=img_201.jpg")
    assert read_input_bytes(records[4]) == mk.jpeg(201)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_manifest_of_image_uris(tmp_path, fmt):
    (tmp_path / "imgs").mkdir()
    for i in range(2):
        (tmp_path / "imgs" / f"{i}.jpg").write_bytes(mk.jpeg(i))
    elsewhere = tmp_path / "other.jpg"
    elsewhere.write_bytes(mk.jpeg(7))
    rows = [{"uri": "imgs/0.jpg", "caption": "zero", "license": "CC0-1.0"},
            {"uri": str(elsewhere), "caption": "seven", "license": ""},
            {"uri": "", "caption": "none", "license": ""},
            {"uri": "imgs/1.jpg", "caption": "one", "license": "CC-BY-4.0"}]
    path = tmp_path / f"list.{fmt}"
    if fmt == "csv":
        path.write_text("uri,caption,license\n" + "".join(f"{r['uri']},{r['caption']},{r['license']}\n" for r in rows))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    records = discover(_cfg(path, license="fallback"))
    assert [r["key"] for r in records][:4] == ["imgs/0.jpg", str(elsewhere), f"list.{fmt}#2", "imgs/1.jpg"]
    assert [r["license"] for r in records][:4] == ["CC0-1.0", "fallback", "fallback", "CC-BY-4.0"]
    assert records[0]["caption"] == "zero" and "problem" in records[2]
    assert read_input_bytes(records[0]) == mk.jpeg(0) and read_input_bytes(records[1]) == mk.jpeg(7)
    if fmt == "jsonl":
        assert records[4]["problem"].startswith(f"manifest {path}: entry 4 is not a JSON object")


def test_a_file_of_no_known_kind_is_refused():
    with pytest.raises(InputError, match="input must be a folder"):
        discover(_cfg(__file__))


def test_parquet_without_image_or_uri_column_is_refused(tmp_path):
    path = tmp_path / "meta.parquet"
    pq.write_table(pa.table({"caption": ["x"]}), path)
    with pytest.raises(InputError, match="no column of image URIs"):
        discover(_cfg(path))
