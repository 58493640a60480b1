"""End-to-end runs on the session's local Ray."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.core import config
from pipeline.engine.runner import RunConflict
from pipeline.postrun.finish import run_pipeline
from tests import corpus

REPO = Path(__file__).resolve().parent.parent


def _cfg(out, **sets):
    overrides = [{"run": {"out": str(out), "progress": False}}]
    overrides += [config.parse_set(f"{k}={v}") for k, v in sets.items()]
    return config.load_config("cpu", overrides=overrides)


def _all_rows(run_dir):
    rows = []
    for folder in ("candidates", "errors"):
        for path in sorted((Path(run_dir) / folder).glob("*.parquet")):
            rows += pq.read_table(path, columns=["sample_id", "status", "source_uri", "reason", "task"]).to_pylist()
    return rows


@pytest.fixture(scope="module")
def sample_run(ray_address, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "samples"
    result = run_pipeline(_cfg(out, **{"run.shard_size": 2, "decode.working_size": 256}), log=lambda m: None)
    return result


def test_every_sample_is_accounted_for(sample_run):
    manifest = json.loads((sample_run.run_dir / "manifest.json").read_text())
    rows = _all_rows(sample_run.run_dir)
    assert manifest["complete"] and manifest["inputs"] == 6
    assert sum(manifest["rows"].values()) == len(rows)
    assert len({r["sample_id"] for r in rows}) == len(rows)
    names = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "rolling_ball.mp4")
    assert {r["source_uri"] for r in rows} == {f"samples/{n}" for n in names}
    clip = [r for r in rows if r["source_uri"].endswith(".mp4")]
    assert [(r["status"], r["reason"]) for r in clip] == [("skipped", "color_alteration takes still images, this input is a video")]
    assert manifest["rows"]["ok"] >= 10
    assert manifest["tasks"]["color_alteration"]["ok"] == manifest["rows"]["ok"]
    for entry in manifest["shards"]:
        assert entry["rows"] == pq.read_metadata(sample_run.run_dir / entry["path"]).num_rows
    assert (sample_run.run_dir / "config.yaml").exists()
    assert len(list((sample_run.run_dir / "stats" / "shards").glob("*.json"))) == 3  # 6 inputs, 2 per shard


def test_datasets_decodes_the_image_columns_offline(sample_run):
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(sample_run.run_dir / "candidates" / "*.parquet"), split="train")
    first = ds[0]
    assert isinstance(first["source_image"], Image.Image) and isinstance(first["target_image"], Image.Image)
    assert first["source_image"].size == first["target_image"].size == first["mask"].size
    table = pq.read_table(sample_run.run_dir / "candidates", columns=["source_image", "target_image", "mask"])
    written = [v["bytes"] for column in table.columns for v in column.to_pylist() if v]
    assert written and all(b.startswith(b"\x89PNG\r\n\x1a\n") for b in written)  # pictures travel as NPY, land as PNG
    assert first["instruction_en"] and first["instruction_zh"]
    assert json.loads(first["provenance"])["stages"]["lab_recolor"]["backend"] == "opencv.Lab"


def test_rerun_of_a_finished_run_runs_no_stage_and_writes_nothing(sample_run):
    before = {p: p.stat().st_mtime_ns for p in sample_run.run_dir.rglob("*.parquet")}
    records = {p: p.read_bytes() for p in (sample_run.run_dir / "stats" / "shards").glob("*.json")}
    again = run_pipeline(_cfg(sample_run.run_dir, **{"run.shard_size": 2, "decode.working_size": 256}), log=lambda m: None)
    assert again.stats["stages_ran"] is False and "ray" not in again.stats
    assert {p: p.stat().st_mtime_ns for p in sample_run.run_dir.rglob("*.parquet")} == before
    assert {p: p.read_bytes() for p in records} == records


def test_sample_ids_are_stable_across_runs(sample_run, tmp_path):
    other = run_pipeline(_cfg(tmp_path / "again", **{"run.shard_size": 3, "decode.working_size": 256}), log=lambda m: None)
    first = sorted(r["sample_id"] for r in _all_rows(sample_run.run_dir))
    assert sorted(r["sample_id"] for r in _all_rows(other.run_dir)) == first


def test_other_settings_in_the_same_folder_are_refused(sample_run):
    with pytest.raises(RunConflict, match="other settings"):
        run_pipeline(_cfg(sample_run.run_dir, **{"run.shard_size": 5}), log=lambda m: None)


def test_bad_file_corpus_yields_a_row_per_input_and_no_crash(ray_address, tmp_path):
    folder = tmp_path / "corpus"
    expected = corpus.write_corpus(folder)
    images = [{"id": i, "file_name": name} for i, name in enumerate(sorted(expected))]
    coco = {"images": images, "categories": [{"id": 1, "name": "cup"}],
            "annotations": [{"image_id": i, "category_id": 1, "bbox": [20, 20, 60, 40]} for i in range(len(images))]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    cfg = _cfg(tmp_path / "run", **{"input.path": str(folder), "input.annotations": str(tmp_path / "coco.json"), "run.shard_size": 6, "decode.working_size": 128})
    result = run_pipeline(cfg, log=lambda m: None)
    by_file = {}
    for row in _all_rows(result.run_dir):
        by_file.setdefault(Path(row["source_uri"]).name, []).append(row)
    assert set(by_file) == set(expected)
    for name, outcome in expected.items():
        statuses = {r["status"] for r in by_file[name]}
        if outcome == corpus.REFUSED:
            assert statuses == {"error"}, (name, by_file[name])
            assert by_file[name][0]["reason"].startswith("decode: ")
        elif outcome == corpus.SKIPPED:
            assert statuses == {"skipped"}, (name, by_file[name])
        else:
            assert statuses <= {"ok", "rejected", "skipped"} and by_file[name], name


def _make_inputs(folder: Path, count: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(count):
        rgb = np.full((96, 128, 3), 60, np.uint8)
        rgb[30:70, 40:90] = rng.integers(120, 255, size=3, dtype=np.uint8)
        rgb = np.clip(rgb.astype(int) + rng.integers(-20, 20, size=rgb.shape), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"img{i:03d}.png")
        images.append({"id": i, "file_name": f"img{i:03d}.png"})
        annotations.append({"image_id": i, "category_id": 1, "bbox": [36, 26, 58, 48]})
    ann = folder.parent / "inputs.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "box"}]}))
    return ann


def _cli_run(ray_address, folder, ann, out):
    return [
        sys.executable, "-m", "pipeline", "run", "--task", "color", "--input", str(folder), "--annotations", str(ann),
        "--out", str(out), "--address", ray_address, "--no-progress", "--set", "run.shard_size=2",
        "--set", "decode.working_size=128",
    ]


def test_killed_run_resumes_exactly_once(ray_address, tmp_path):
    folder = tmp_path / "inputs"
    ann = _make_inputs(folder, 40)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(_cli_run(ray_address, folder, ann, out), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    commits = out / "stats" / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if commits.exists() and any(commits.glob("*.json")):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list(commits.glob("*.json")))
    assert 1 <= done_at_kill < 20, f"the kill should land mid-run; {done_at_kill} of 20 shards were done"

    rerun = subprocess.run(_cli_run(ray_address, folder, ann, out), cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    rows = _all_rows(out)
    per_input = {}
    for row in rows:
        per_input.setdefault(row["source_uri"], []).append(row["sample_id"])
    assert len(per_input) == 40  # none missing
    ids = [r["sample_id"] for r in rows]
    assert len(ids) == len(set(ids))  # none twice
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and sum(manifest["rows"].values()) == len(rows)
    assert not list(out.rglob("*.tmp"))  # a file half-written at the kill was redone and renamed


def test_contact_sheet_draws_one_tile_per_source(sample_run, tmp_path):
    from pipeline.cli.main import main

    out = tmp_path / "sheet.png"
    assert main(["sheet", str(sample_run.run_dir), "--out", str(out), "--per-task", "2"]) == 0
    sheet = Image.open(out)
    # two tiles of 220 px panels plus captions, three panels wide
    assert sheet.height > 2 * 220 and sheet.width > 3 * 220
    assert main(["sheet", str(sample_run.run_dir), "--out", str(out), "--status", "error"]) == 2


def test_run_ends_with_selection_and_the_hq_subset_exports(sample_run, tmp_path):
    import datasets

    from pipeline.cli.main import main

    run = sample_run.run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    funnel = manifest["funnel"]["color_alteration"]
    assert funnel["generated"] == manifest["tasks"]["color_alteration"]["ok"] + manifest["tasks"]["color_alteration"]["rejected"]
    assert 1 <= funnel["kept"] <= max(1, funnel["generated"] // 20)
    assert (run / "selection" / "done.json").exists() and list((run / "hq").glob("*.parquet"))
    assert (run / "report" / "index.html").exists()  # runs write their report at the end
    out = tmp_path / "export"
    assert main(["export", str(run), "--to", str(out)]) == 0
    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    assert len(ds) == funnel["kept"] and isinstance(ds[0]["target_image"], Image.Image)
    assert all(ds[i]["selected"] for i in range(len(ds)))
    assert (out / "README.md").read_text().startswith("---")
    assert main(["select", str(run)]) == 0  # repeatable: nothing changed, nothing redone


def test_a_served_judge_scores_the_run_and_selection_ranks_by_o(ray_address, tmp_path):
    from pipeline.cli.main import main
    from tests.fake_judge_server import FakeJudgeServer

    with FakeJudgeServer(default="good:8,7") as server:
        code = main([
            "run", "--task", "color", "--limit", "1", "--out", str(tmp_path / "r"), "--no-progress",
            "--judge-url", server.base_url, "--judge-model", "fake-judge", "--set", "decode.working_size=128",
        ])
    assert code == 0
    rows = _all_rows(tmp_path / "r")
    judged = [json.loads(r) for p in (tmp_path / "r" / "candidates").glob("*.parquet") for r in pq.read_table(p, columns=["judge"]).column("judge").to_pylist()]
    scored = [j for j in judged if j["state"] == "scored"]
    assert scored and all(j["sc"] == 7 and j["pq"] == 7 and j["model"] == "fake-judge" for j in scored)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["funnel"]["color_alteration"]["score_kind"] == "o"
    assert manifest["funnel"]["color_alteration"]["kept"] >= 1 and rows


def test_the_writers_leave_with_the_run(sample_run):
    import ray

    deadline = time.time() + 20  # ray.kill is asynchronous
    while ray.available_resources().get("CPU", 0.0) < ray.cluster_resources()["CPU"] and time.time() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0.0) == ray.cluster_resources()["CPU"]  # nothing the run started still holds a CPU
