"""`python -m pipeline verify`: reading runs, the split, the metrics file, the pictures, the
Kontext path, errors, and (on a task where only the instruction tells the edit) that the editor
learns to follow instructions while the shuffled-instruction control cannot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from editor.bundled import derangement
from editor.data import DataError, Triplet, fold_splits, load_triplets, split_by_source
from editor.metrics import PSNR_CAP, apply_mean_edit, distances, mean_edits
from editor.verify import gallery_rows
from pipeline.cli.main import main
from tests.editor_rows import tone_rows, write_run

QUICK = ["--profile", "tiny", "--set", "editor.train.checkpoint_every=5"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rows = tone_rows(6, size=32)
    rows[0] = {**rows[0], "status": "rejected"}
    rows[1] = {**rows[1], "instruction_en": "  "}
    return write_run(tmp_path_factory.mktemp("verify") / "run", rows, hq=rows[2:6])


def test_loading_filters_rows_and_the_split_keeps_sources_apart(run):
    loaded = load_triplets(run, "ok", 16)
    assert len(loaded.triplets) == 10 and loaded.skipped == {"no instruction": 1}  # the rejected row is not a candidate
    assert loaded.triplets[0].source.shape == (16, 16, 3)
    train, held = split_by_source(loaded.triplets, 0.2)
    assert {t.source_key for t in train}.isdisjoint({t.source_key for t in held})
    assert len({t.source_key for t in held}) == 1 and len(train) + len(held) == 10  # ceil(0.2 x 5 sources)
    assert split_by_source(loaded.triplets, 0.2) == (train, held)  # seeded: the same split every time
    assert len(load_triplets(run, "hq", 16).triplets) == 4
    with pytest.raises(DataError, match="one source image"):
        split_by_source([t for t in loaded.triplets if t.source_key == train[0].source_key], 0.5)
    folds = fold_splits(loaded.triplets, 3)
    held_keys = [{t.source_key for t in fold_held} for _, fold_held in folds]
    assert sorted(t.sample_id for _, fold_held in folds for t in fold_held) == sorted(t.sample_id for t in loaded.triplets)
    assert all(a.isdisjoint(b) for i, a in enumerate(held_keys) for b in held_keys[i + 1 :])
    assert all(keys.isdisjoint({t.source_key for t in fold_train}) for keys, (fold_train, _) in zip(held_keys, folds))
    with pytest.raises(DataError, match="between 2 and 5"):
        fold_splits(loaded.triplets, 6)


def test_data_errors_are_clear(tmp_path, run):
    with pytest.raises(DataError, match="neither a run folder"):
        load_triplets(tmp_path, "ok")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00000.tar").write_bytes(b"")
    with pytest.raises(DataError, match="WebDataset"):
        load_triplets(tmp_path, "ok")
    with pytest.raises(DataError, match="of tasks"):
        load_triplets(run, "ok", tasks={"style_transfer"})
    assert main(["verify", str(tmp_path / "missing")]) == 2


def test_metrics_and_baselines():
    a = np.zeros((8, 8, 3), np.uint8)
    same = distances(a, a)
    assert same["l1"] == 0 and same["psnr"] == PSNR_CAP and same["ssim"] == pytest.approx(1.0)
    b = np.full((8, 8, 3), 51, np.uint8)
    assert distances(a, b)["l1"] == pytest.approx(0.2) and distances(a, b)["psnr"] == pytest.approx(20 * np.log10(5), rel=1e-6)
    edits = mean_edits([a, a], [b, np.full_like(a, 153)], ["tone", "tone"])
    assert np.allclose(apply_mean_edit(a, edits, "tone"), 0.4)
    assert np.allclose(apply_mean_edit(a, edits, "unseen task"), 0.4)  # falls back to the mean over all tasks
    order = derangement(7, 0)
    assert sorted(order) == list(range(7)) and all(i != j for i, j in enumerate(order))


def test_verify_writes_metrics_pictures_and_checkpoints(run, tmp_path, capsys):
    out = tmp_path / "v"
    code = main(["verify", str(run), "--out", str(out), "--steps", "10", "--size", "16", *QUICK])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    row = metrics["tasks"]["tone_transformation"]
    assert set(row) >= {"n", "editor", "identity", "mean_edit", "shuffled_instructions"}
    assert set(row["editor"]) == {"l1", "psnr", "ssim"} and row["n"] == metrics["data"]["held_out_rows"]
    per_row = metrics["rows"]
    assert len(per_row) == row["n"] and set(per_row[0]["l1"]) == {"editor", "identity", "mean_edit", "shuffled_instructions", "editor_from_noise"}
    assert row["editor"]["l1"] == pytest.approx(sum(r["l1"]["editor"] for r in per_row) / row["n"], abs=1e-4)
    assert row["editor_wins"] == sum(r["l1"]["editor"] < r["l1"]["identity"] for r in per_row)
    assert metrics["editor"]["kind"] == "bundled" and metrics["editor"]["encoder"]["prefix_tokens"] > 0
    assert metrics["editor"]["train"]["steps"] == 10 and metrics["editor"]["train_seconds"]["editor"] > 0
    assert set(metrics["data"]["train_sources"]).isdisjoint(metrics["data"]["held_out_sources"])
    curve = Image.open(out / "loss_curve.png")
    gallery = Image.open(out / "gallery.png")
    assert curve.size[0] > 400 and gallery.size[1] > 100
    for name in ("editor", "shuffled_instructions"):
        assert (out / "checkpoints" / name / "latest.safetensors").exists()
    assert "tone_transformation: editor L1" in capsys.readouterr().err
    # a second run finds finished checkpoints and trains nothing
    assert main(["verify", str(run), "--out", str(out), "--steps", "10", "--size", "16", *QUICK]) == 0
    assert capsys.readouterr().err.count("resumed from") == 2
    assert json.loads((out / "metrics.json").read_text())["tasks"] == metrics["tasks"]


def test_cross_validation_holds_out_every_photo_once_and_pools_the_folds(run, tmp_path, capsys):
    out = tmp_path / "cv"
    args = ["verify", str(run), "--out", str(out), "--steps", "5", "--size", "16", "--folds", "3", *QUICK]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["folds"] == 3 and len(metrics["folds"]) == 3
    assert sorted(metrics["data"]["held_out_samples"]) == sorted(t.sample_id for t in load_triplets(run, "ok", 16).triplets)
    row = metrics["tasks"]["tone_transformation"]
    assert row["n"] == 10 == sum(f["held_out_rows"] for f in metrics["folds"])
    # the pooled mean is the row-weighted mean of the folds' means
    pooled = sum(f["tasks"]["tone_transformation"]["n"] * f["tasks"]["tone_transformation"]["editor"] for f in metrics["folds"]) / 10
    assert row["editor"]["l1"] == pytest.approx(pooled, abs=1e-4)
    assert row["editor_beats_control"] == sum(r["l1"]["editor"] < r["l1"]["shuffled_instructions"] for r in metrics["rows"])
    assert "of 3 folds" in metrics["findings"][0]
    for k in (1, 2, 3):
        fold = json.loads((out / f"fold_{k}" / "metrics.json").read_text())
        assert fold["data"]["held_out_sources"] == metrics["folds"][k - 1]["held_out_sources"]
        assert set(fold["data"]["train_sources"]).isdisjoint(fold["data"]["held_out_sources"])
        assert (out / f"fold_{k}" / "checkpoints" / "editor" / "latest.safetensors").exists()
    assert (out / "loss_curve.png").exists() and (out / "gallery.png").exists()
    capsys.readouterr()
    assert main(args) == 0  # every fold resumes from its finished checkpoints
    assert capsys.readouterr().err.count("resumed from") == 6
    assert main([*args[:-len(QUICK) - 2], "--folds", "6", *QUICK]) == 2
    assert "between 2 and 5" in capsys.readouterr().err


def test_guidance_needs_instruction_dropout_and_is_recorded(run, tmp_path, capsys):
    args = ["verify", str(run), "--out", str(tmp_path / "g"), "--steps", "5", "--size", "16", "--no-control", *QUICK, "--set", "editor.guidance=2"]
    assert main(args) == 2
    assert "drop_instruction" in capsys.readouterr().err
    assert main([*args, "--set", "editor.train.drop_instruction=0.2"]) == 0
    described = json.loads((tmp_path / "g" / "metrics.json").read_text())["editor"]
    assert described["guidance"] == 2.0 and described["train"]["drop_instruction"] == 0.2


def test_the_gallery_shows_each_task_and_spreads_photos():
    def row(task, source):
        return Triplet(f"{task}-{source}", task, source, "x", None, None)

    held = [row("tone", "a"), row("tone", "a"), row("tone", "b"), row("style", "a"), row("style", "c")]
    assert gallery_rows(held, 4) == [3, 0, 4, 2]  # tasks in turn (sorted), photos in turn within a task


def test_verify_with_flux_kontext_and_a_served_judge(run, tmp_path):
    from tests.fake_judge_server import FakeJudgeServer

    out = tmp_path / "k"
    with FakeJudgeServer(default="good:8,7") as server:
        assert main(["verify", str(run), "--out", str(out), "--size", "16", "--editor", "flux-kontext", "--profile", "tiny",
                     "--set", "editor.kontext.steps=2", "--judge-url", server.base_url, "--judge-model", "fake-judge"]) == 0
        judged = len(server.requests)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["editor"]["kind"] == "flux-kontext" and metrics["editor"]["steps"] == 2
    row = metrics["tasks"]["tone_transformation"]
    assert set(row) >= {"editor", "identity", "mean_edit", "judge"}
    assert "shuffled_instructions" not in row
    # one SC and one PQ request per held-out edit; SC is the smaller of its two scores
    assert judged == 2 * row["n"] and row["judge"] == {"scored": row["n"], "of": row["n"], "sc": 7.0, "pq": 7.0, "o": 7.0}
    assert (out / "gallery.png").exists() and not (out / "loss_curve.png").exists()


def test_the_editor_follows_instructions_and_the_shuffled_control_cannot(tmp_path):
    """Each photo is made brighter and darker: only the instruction says which. The mean edit
    and the shuffled control can only split the difference."""
    run = write_run(tmp_path / "run", tone_rows(24, size=32))
    out = tmp_path / "v"
    assert main(["verify", str(run), "--out", str(out), "--size", "16", "--steps", "300", *QUICK,
                 "--set", "editor.patch=2", "--set", "editor.held_out=0.25"]) == 0
    row = json.loads((out / "metrics.json").read_text())["tasks"]["tone_transformation"]
    l1 = {k: row[k]["l1"] for k in ("editor", "identity", "mean_edit", "shuffled_instructions")}
    assert l1["editor"] < 0.6 * l1["identity"], l1
    assert l1["editor"] < 0.6 * l1["mean_edit"], l1
    assert l1["editor"] < 0.6 * l1["shuffled_instructions"], l1


def test_editor_kontext_ref_replaces_the_profiles_model_without_touching_run_identity(run, tmp_path, capsys):
    from pipeline.core import config

    missing = tmp_path / "no-kontext-here"
    assert main(["verify", str(run), "--out", str(tmp_path / "k"), "--size", "16", "--editor", "flux-kontext",
                 "--set", f"editor.kontext.ref={missing}"]) == 2
    assert str(missing) in capsys.readouterr().err
    # verify's settings never change which run a configuration names
    plain = config.load_config("cpu")
    assert config.identity_hash(plain) == config.identity_hash(config.load_config("cpu", overrides=[{"editor": {"kontext": {"ref": "x"}, "size": 64}}]))
