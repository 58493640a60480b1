"""Exports of a hand-built, selected run: the filters, both formats, the dataset card, the
checksummed manifest, and loading the Parquet export with `datasets` offline."""

import hashlib
import io
import json
import os
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from pipeline.core import schema
from pipeline.postrun import selection
from pipeline.postrun.export import ExportError, export_run
from tests.test_selection import FLUX, JUDGE, build_run, source_pictures


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = build_run(tmp_path_factory.mktemp("export") / "run")
    selection.select_run(root, {"select": {}})
    return root


def exported_ids(folder):
    return sorted(pq.read_table(folder / "data").column("sample_id").to_pylist())


def card_header(folder):
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def test_default_export_leaves_out_unknown_licences(run_dir, tmp_path):
    out = tmp_path / "hq"
    manifest = export_run(run_dir, out)
    assert exported_ids(out) == ["c01", "st1", "t00"]  # c02 has no licence
    assert manifest["dropped"] == {"unknown license": 1}
    assert manifest["tasks"] == {"color_alteration": 1, "style_transfer": 1, "tone_transformation": 1}
    # only triplet shards of one schema, the card and the manifest
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["README.md", "data/train-00000-of-00001.parquet", "export_manifest.json"]
    for item in manifest["files"]:
        assert hashlib.sha256((out / item["path"]).read_bytes()).hexdigest() == item["sha256"]
    assert json.loads((out / "export_manifest.json").read_text()) == manifest

    everything = export_run(run_dir, out, include_unknown_license=True)  # replaces the earlier export
    assert exported_ids(out) == ["c01", "c02", "st1", "t00"] and everything["dropped"] == {}


def test_keep_ratio_min_o_and_per_task(run_dir, tmp_path):
    # 0.15 of each task's candidates: colour 6 (3 ranked), tone 3, style 1
    wide = export_run(run_dir, tmp_path / "wide", keep_ratio=0.15, include_unknown_license=True)
    assert exported_ids(tmp_path / "wide") == ["c01", "c02", "c04", "st1", "t00", "t01", "t05"]
    assert wide["tasks"]["tone_transformation"] == 3
    rows = {r["sample_id"]: r for r in pq.read_table(tmp_path / "wide" / "data").to_pylist()}
    assert rows["c04"]["selected"] is False and rows["c01"]["selected"] is True  # the run's own verdict

    # --min-o only touches rows with an O: t05 (7.0) leaves, the gate-ranked colour rows stay
    export_run(run_dir, tmp_path / "o", keep_ratio=0.15, min_o=7.5, include_unknown_license=True)
    assert exported_ids(tmp_path / "o") == ["c01", "c02", "c04", "st1", "t00", "t01"]

    limited = export_run(run_dir, tmp_path / "one", keep_ratio=0.15, per_task=1, include_unknown_license=True)
    assert exported_ids(tmp_path / "one") == ["c01", "st1", "t00"]  # the best of each task
    assert limited["dropped"] == {"over the per-task limit": 4}


def test_exclude_benchmark_drops_near_duplicate_sources(run_dir, tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    pics = source_pictures()
    # the benchmark holds s0b rescaled and re-encoded as JPEG, plus an unrelated picture
    Image.fromarray(pics["s0b"]).resize((48, 48)).save(bench / "case1.jpg", quality=90)
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(bench / "case2.png")
    manifest = export_run(run_dir, tmp_path / "clean", exclude_benchmark=bench, include_unknown_license=True)
    assert exported_ids(tmp_path / "clean") == ["c02", "st1", "t00"]
    assert manifest["dropped"] == {"near-duplicate of a benchmark image": 1}


def test_webdataset_shards(run_dir, tmp_path):
    out = tmp_path / "wds"
    manifest = export_run(run_dir, out, fmt="webdataset")
    tars = sorted((out / "data").glob("*.tar"))
    assert [str(t.relative_to(out)) for t in tars] == [f["path"] for f in manifest["files"][:-1]]
    with tarfile.open(tars[0]) as tar:
        names = sorted(tar.getnames())
        meta = json.load(tar.extractfile("c01.json"))
        target = Image.open(io.BytesIO(tar.extractfile("c01.target.png").read()))
        assert target.size == (64, 64)
    assert names == ["c01.json", "c01.mask.png", "c01.source.png", "c01.target.png",
                     "st1.json", "st1.source.png", "st1.target.png", "t00.json", "t00.source.png", "t00.target.png"]
    assert meta["task"] == "color_alteration" and meta["scores"]["gate_score"] == 0.95 and meta["selected"] is True
    header, _ = card_header(out)
    assert header["configs"][0]["data_files"][0]["path"] == "data/*.tar"


def test_export_refuses_a_foreign_folder_and_an_unselected_run(run_dir, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an export"):
        export_run(run_dir, tmp_path / "busy")
    bare = build_run(tmp_path / "bare")
    with pytest.raises(ExportError, match="select"):
        export_run(bare, tmp_path / "x")


def test_parquet_export_loads_with_datasets_offline_and_its_card(run_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "hq"
    export_run(run_dir, out, include_unknown_license=True)
    header, text = card_header(out)

    import datasets

    pattern = header["configs"][0]["data_files"][0]["path"]
    ds = datasets.load_dataset("parquet", data_files=str(out / pattern), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 4 == header["dataset_info"]["splits"][0]["num_examples"]
    first = ds[0]
    assert isinstance(first["source_image"], Image.Image) and first["source_image"].size == (64, 64)
    assert isinstance(first["target_image"], Image.Image)
    assert sorted(ds.column_names) == sorted(schema.ROW_COLUMNS)

    # the card: HF YAML header with features, categories and licences; the body names the terms
    assert header["task_categories"] == ["image-to-image"]
    assert set(header["license"]) == {"cc-by-4.0", "cc0-1.0", "other"}  # c02's missing licence is not a licence
    features = {f["name"]: f["dtype"] for f in header["dataset_info"]["features"]}
    assert features["source_image"] == "image" and features["selected"] == "bool" and len(features) == len(schema.ROW_COLUMNS)
    assert FLUX in text and "FLUX.1 [dev] Non-Commercial License" in text
    assert JUDGE in text and "opencv.Lab" in text
    assert "| color_alteration | 2 |" in text and "| select.keep_ratio | 0.05 |" in text
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"



def test_reading_a_shard_leaves_no_thread_that_aborts_the_interpreter(run_dir):
    """run_store.read_parquet reads a local file by its path: pyarrow 26 reading a Python file
    object on its threads left a thread that aborted most processes at exit with 134 (an export
    that found nothing to export exited 134, not 2). Three processes, each must exit 0."""
    import subprocess
    import sys

    shard = next((run_dir / "candidates").glob("*.parquet"))
    code = f"from pipeline.core.run_store import read_parquet; from pathlib import Path; read_parquet(Path({str(shard)!r}), ['sample_id'])"
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "terminate called" not in done.stderr, done.stderr[-300:]
