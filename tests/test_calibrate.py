"""`calibrate` on run folders built by hand: candidate rows with known gate values and judge O,
and people's verdicts whose right limits are known."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from filters.common_gates import CommonGatesStage, merged_limits
from pipeline.cli.main import main
from pipeline.core import config as config_mod
from pipeline.core import schema
from pipeline.core.image_io import encode_png
from pipeline.postrun import calibration, selection_rules
from pipeline.postrun.agreement import agreement
from pipeline.postrun.calibration_layer import write_layer
from pipeline.postrun.threshold_fit import GateValue, LabelledRow, fit_gates

HASH = "cafe0123cafe0123"
COLOR, REMOVE, STYLE, TONE = "color_alteration", "subject_remove", "style_transfer", "tone_transformation"
SAT_KEY = "tasks.color_alteration.gate.min_saturation"
NOISE_KEY = "common_gates.per_task.color_alteration.max_noise_increase"
OUTSIDE_KEY = "tasks.subject_remove.gate.max_outside_change"


def gate(value, threshold, direction):
    passed = value >= threshold if direction == "at_least" else value <= threshold
    return {"value": value, "threshold": threshold, "passed": passed, "direction": direction}


def candidate(sid, task, gates, o=None, kind=None):
    status = "ok" if all(g["passed"] for g in gates.values()) else "rejected"
    scores = {"gates": gates}
    judge = {"state": "none"}
    if o is not None and status == "ok":  # the judge scores only rows that passed the gates
        scores["viescore"] = {"sc": o, "pq": o, "o": o}
        judge = {"state": "scored"}
    return {"sample_id": sid, "task": task, "status": status, "scores": json.dumps(scores), "judge": json.dumps(judge),
            "edit": json.dumps({"kind": kind} if kind else {}), "instruction_en": f"edit {sid}", "source_sha256": f"sha-{sid}"}


def verdict(sid, task, keep, run=HASH):
    return {"sample_id": sid, "run": run, "verdict": "keep" if keep else "reject", "score": None, "note": "",
            "task": task, "reviewer": "r1", "at": "2026-12-04T00:00:00Z"}


def colour_rows():
    """People keep a recolouring when its saturation is at least 0.30 and it added at most 2.0 of
    noise: today's limits (0.12 and 3.0) let rejects through."""
    rows, labels = [], {}
    for k in range(1, 31):
        for j in range(8):
            sat, noise = round(0.02 * k, 4), 0.5 * j
            sid = f"c-{k:02d}-{j}"
            rows.append(candidate(sid, COLOR, {
                "target_saturation": gate(sat, 0.12, "at_least"),
                "noise_increase": gate(noise, 3.0, "at_most"),
                "target_size_mismatch": gate(0.0, 0.0, "at_most"),
            }))
            labels[sid] = sat >= 0.30 - 1e-9 and noise <= 2.0
    return rows, labels


def remove_rows():
    """People keep a removal that changed at most 1.0 outside: today's 0.5 rejects good rows."""
    rows, labels = [], {}
    for k in range(20):
        value = round(0.1 * k, 4)
        sid = f"r-{k:02d}"
        rows.append(candidate(sid, REMOVE, {"outside_change": gate(value, 0.5, "at_most")}))
        labels[sid] = value <= 1.0 + 1e-9
    return rows, labels


def style_rows():
    """Five verdicts: too few to fit anything."""
    rows = [candidate(f"s-{k}", STYLE, {"edge_f1": gate(0.1 * k, 0.5, "at_least")}) for k in range(5)]
    return rows, {r["sample_id"]: k % 2 == 0 for k, r in enumerate(rows)}


def tone_rows():
    """Judged rows: people keep those the judge gave O 7 or more; today's min O is 6."""
    rows, labels = [], {}
    for k in range(12):
        o = 4.0 + 0.5 * k
        sid = f"t-{k:02d}"
        rows.append(candidate(sid, TONE, {"image_change": gate(10.0, 2.0, "at_least")}, o=o))
        labels[sid] = o >= 7.0
    return rows, labels


def make_run(root, parts, verdict_lines=None):
    rows, labels = [], {}
    for part_rows, part_labels in parts:
        rows += part_rows
        labels.update(part_labels)
    (root / "candidates").mkdir(parents=True)
    pq.write_table(schema.to_output_table(rows), root / "candidates" / "shard-00000.parquet")
    (root / "manifest.json").write_text(json.dumps({"config_hash": HASH}))
    (root / "config.yaml").write_text(config_mod.dump(config_mod.load_config("cpu")))
    tasks = {r["sample_id"]: r["task"] for r in rows}
    lines = verdict_lines if verdict_lines is not None else [json.dumps(verdict(s, tasks[s], k)) for s, k in labels.items()]
    (root / "review").mkdir()
    (root / "review" / "verdicts.jsonl").write_text("".join(line + "\n" for line in lines))
    return root


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    root = make_run(tmp_path_factory.mktemp("cal") / "run", [colour_rows(), remove_rows(), style_rows(), tone_rows()])
    result = calibration.calibrate_run(root, 0.9)
    layer_path = root / "review" / "calibrated.yaml"
    write_layer(result, layer_path)
    return root, result, layer_path


def _limits(result, task):
    return {lim["key"]: lim for lim in result["tasks"][task]["limits"]}


def test_recovers_known_limits_within_the_grid_step(calibrated):
    _root, result, _layer = calibrated
    colour = _limits(result, COLOR)
    # each fitted limit lies between the last value people kept and the first they rejected (one grid step)
    assert colour[SAT_KEY]["today"] == 0.12 and 0.28 < colour[SAT_KEY]["fitted"] < 0.30  # tightened
    assert 2.0 < colour[NOISE_KEY]["fitted"] < 2.5
    assert 1.0 < _limits(result, REMOVE)[OUTSIDE_KEY]["fitted"] < 1.1  # loosened: recall regained
    assert "target_size_mismatch" not in {g for lim in colour.values() for g in lim["gates"]}  # a yes/no check is not fitted
    fitted = result["tasks"][COLOR]["agreement"]["gates_fitted"]
    today = result["tasks"][COLOR]["agreement"]["gates_today"]
    assert fitted["precision"] >= 0.9 and fitted["recall"] == 1.0
    assert today["precision"] < 0.9
    assert result["tasks"][REMOVE]["agreement"]["gates_today"]["recall"] < 1.0 == result["tasks"][REMOVE]["agreement"]["gates_fitted"]["recall"]


def test_fits_min_o_to_the_judged_verdicts(calibrated):
    _root, result, _layer = calibrated
    assert result["min_o"]["today"] == 6.0 and 6.5 < result["min_o"]["fitted"] <= 7.0  # halfway between 6.5 and 7
    judge = result["tasks"][TONE]["agreement"]
    assert judge["judge_today"]["precision"] < 0.9 and judge["judge_fitted"] == {**judge["judge_fitted"], "precision": 1.0, "recall": 1.0}


def test_task_with_too_few_verdicts_is_left_alone(calibrated):
    _root, result, layer_path = calibrated
    style = result["tasks"][STYLE]
    assert not style["calibrated"] and "fewer than 10" in style["left_alone_because"]
    assert all(lim["fitted"] == lim["today"] for lim in style["limits"])
    text = layer_path.read_text()
    assert "# Left as they are: style_transfer (5 verdicts, fewer than 10).\n" in text
    assert STYLE not in (yaml.safe_load(text).get("tasks") or {})


def test_calibration_json_written(calibrated):
    root, result, _layer = calibrated
    saved = json.loads((root / "review" / "calibration.json").read_text())
    assert saved["tasks"].keys() == result["tasks"].keys() and saved["verdicts"]["matched"] == 240 + 20 + 5 + 12


def test_layer_loads_and_changes_gates_and_selection_as_fitted(calibrated):
    root, result, layer_path = calibrated
    header = layer_path.read_text().splitlines()[0]
    assert header.startswith("# Fitted by `python -m pipeline calibrate` at ")
    cfg = config_mod.load_config("cpu", [str(layer_path)])
    colour = _limits(result, COLOR)
    assert cfg["tasks"][COLOR]["gate"]["min_saturation"] == colour[SAT_KEY]["fitted"]
    assert cfg["tasks"][REMOVE]["gate"]["max_outside_change"] == _limits(result, REMOVE)[OUTSIDE_KEY]["fitted"]
    stage = CommonGatesStage.from_config(cfg)
    limits = merged_limits(stage.limits, stage.per_task, stage.per_kind, COLOR, None)
    assert limits["max_noise_increase"] == colour[NOISE_KEY]["fitted"]
    assert merged_limits(stage.limits, stage.per_task, stage.per_kind, REMOVE, None)["max_noise_increase"] == 3.0  # others untouched

    # selection on the judged task: today's min O keeps O 6 and 6.5, the fitted one does not
    rows, labels = tone_rows()
    hashes = {r["sample_id"]: {"source": r["sample_id"], "phash": f"{i * 0x1111111111111:016x}"} for i, r in enumerate(rows)}

    def selected(select_cfg):
        settings = {**select_cfg, "keep_ratio": 1.0, "dedup_sources": False, "dedup_instructions": False}
        records = selection_rules.decide([dict(r, license=None) for r in rows], hashes, settings)
        return {r["sample_id"] for r in records if r["selected"]}

    assert selected(config_mod.load_config("cpu")["select"]) == {s for s, o in zip(labels, range(12)) if 4.0 + 0.5 * o >= 6.0}
    assert selected(cfg["select"]) == {s for s, keep in labels.items() if keep}


def test_agreement_matches_hand_counts():
    people = [True, True, True, False, False, False, True, False]
    kept = [True, True, False, True, False, False, True, False]
    # tp 3, fp 1, fn 1, tn 3: chance agreement (4*4 + 4*4) / 64 = 0.5
    assert agreement(zip(people, kept)) == {"n": 8, "accuracy": 0.75, "kappa": 0.5, "precision": 0.75, "recall": 0.75, "kept": 4}
    people = [True] * 5 + [False] * 5
    kept = [True, True, False, False, False, True, False, False, False, False]
    # tp 2, fp 1, fn 3, tn 4: chance (5*3 + 5*7) / 100 = 0.5, kappa (0.6 - 0.5) / 0.5
    assert agreement(zip(people, kept)) == {"n": 10, "accuracy": 0.6, "kappa": 0.2, "precision": 0.6667, "recall": 0.4, "kept": 3}
    assert agreement([(True, False), (False, False)])["precision"] is None  # nothing kept


def test_kind_overridden_limit_keeps_its_verdict(tmp_path):
    """A restoration's sharpness limit comes from common_gates.per_kind: its rows keep their
    recorded verdict, and only the other rows move the task's limit."""
    rows, labels = [], {}
    for k in range(12):
        ratio = 0.1 * k
        plain, restore = f"p-{k:02d}", f"x-{k:02d}"
        rows.append(candidate(plain, TONE, {"sharpness_ratio": gate(ratio, 0.5, "at_least")}))
        rows.append(candidate(restore, TONE, {"sharpness_ratio": gate(ratio, 0.3, "at_least")}, kind="restore"))
        labels[plain] = ratio >= 0.7 - 1e-9
        labels[restore] = ratio >= 0.3 - 1e-9
    result = calibration.calibrate_run(make_run(tmp_path / "run", [(rows, labels)]), 0.9)
    (limit,) = result["tasks"][TONE]["limits"]
    assert limit["key"] == "common_gates.per_task.tone_transformation.min_sharpness_ratio"
    assert limit["today"] == 0.5 and 0.6 < limit["fitted"] <= 0.7


@pytest.mark.parametrize("case, message", [
    ("missing", "no verdicts"),
    ("empty", "empty, no verdicts"),
    ("foreign", "of another run"),
    ("garbled", "not JSON"),
    ("strangers", "of this run"),
])
def test_bad_verdicts_are_one_line_exit_1(tmp_path, capsys, case, message):
    rows, labels = remove_rows()
    lines = {
        "missing": [], "empty": [], "garbled": ["{not json"],
        "foreign": [json.dumps(verdict(s, REMOVE, k, run="0000beef0000beef")) for s, k in labels.items()],
        "strangers": [json.dumps(verdict("nobody", REMOVE, True))],
    }[case]
    root = make_run(tmp_path / "run", [(rows, labels)], lines)
    if case == "missing":
        (root / "review" / "verdicts.jsonl").unlink()
    assert main(["calibrate", str(root)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (root / "review" / "calibration.json").exists()


def test_cli_prints_tables_and_writes_layer(tmp_path, capsys):
    root = make_run(tmp_path / "run", [remove_rows()])
    out = tmp_path / "fitted.yaml"
    assert main(["calibrate", str(root), "--out", str(out), "--task", "remove", "--target-precision", "0.95"]) == 0
    printed = capsys.readouterr().out
    assert "gates_fitted" in printed and OUTSIDE_KEY in printed and str(out) in printed
    assert yaml.safe_load(out.read_text()) == {"tasks": {REMOVE: {"gate": {"max_outside_change": 1.05}}}}  # halfway to 1.1
    config_mod.load_config("cpu", [str(out)])  # the project's loader takes it


def test_select_command_takes_the_layer(calibrated, tmp_path):
    """`select --config LAYER` on a run: rows the judge gave O 6 or 6.5 now fall below min O."""
    _root, _result, layer_path = calibrated
    rows, labels = tone_rows()
    rng = np.random.default_rng(0)
    for row in rows:  # selection hashes each source picture to find near duplicates
        coarse = rng.integers(0, 256, size=(8, 8, 3)).astype(np.uint8)
        row["source_image"] = schema.image_value(encode_png(np.kron(coarse, np.ones((8, 8, 1), np.uint8))))
    root = make_run(tmp_path / "run", [(rows, labels)])

    def below_min_o(*extra):
        assert main(["select", str(root), *extra]) == 0
        records = pq.read_table(root / "selection" / "selection.parquet").to_pylist()
        return {r["sample_id"] for r in records if (r["reason"] or "").startswith("below min O")}

    assert below_min_o() == {"t-00", "t-01", "t-02", "t-03"}  # O 4 to 5.5, under today's 6
    assert below_min_o("--config", str(layer_path)) == {f"t-{k:02d}" for k in range(6)}  # and 6, 6.5 under 7


def test_score_command_takes_a_fitted_layer(tmp_path):
    """`score --config LAYER` gates with the layer's per-task common limit (a task the defaults
    give no per-task limits)."""
    rng = np.random.default_rng(1)
    src = np.kron(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8), np.ones((12, 12, 1), np.uint8))
    tgt = np.clip(src.astype(int) + 20, 0, 255).astype(np.uint8)
    pq.write_table(pa.table({"before": [encode_png(src)], "after": [encode_png(tgt)], "prompt": ["Make it a watercolour painting."]}), tmp_path / "in.parquet")
    layer = tmp_path / "layer.yaml"
    layer.write_text(yaml.safe_dump({"common_gates": {"per_task": {COLOR: {"max_noise_increase": -50.0}}}}))
    args = ["score", "--input", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "s"), "--task", "color",
            "--columns", "src=before,tgt=after,instruction=prompt", "--config", str(layer)]
    assert main(args) == 0
    (row,) = [r for p in (tmp_path / "s").rglob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert json.loads(row["scores"])["gates"]["noise_increase"]["threshold"] == -50.0
    assert row["status"] == "rejected" and "noise_increase" in row["reason"]


def test_min_verdicts_lets_a_small_task_be_fitted(tmp_path):
    root = make_run(tmp_path / "run", [style_rows()])
    assert not calibration.calibrate_run(root, 0.9)["tasks"][STYLE]["calibrated"]
    result = calibration.calibrate_run(root, 0.9, min_verdicts=4)
    assert result["tasks"][STYLE]["calibrated"] and result["min_verdicts"] == 4


@pytest.mark.parametrize(
    "extra, message",
    [(["--task", "nonsense"], "nonsense"), (["--target-precision", "1.5"], "--target-precision"), (["--min-verdicts", "1"], "--min-verdicts")],
)
def test_bad_arguments_are_usage_errors(tmp_path, capsys, extra, message):
    root = make_run(tmp_path / "run", [remove_rows()])
    assert main(["calibrate", str(root), *extra]) == 2
    assert message in capsys.readouterr().err


def test_not_a_run_folder_is_one_line_exit_1(tmp_path, capsys):
    assert main(["calibrate", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert "no manifest.json" in err and "\n" not in err


def test_fit_makes_the_best_move_first():
    """Limit `a` alone can isolate one kept row (precise, little recall), limit `b` explains every
    verdict: taking limits in a fixed order would stop at `a`'s tiny set."""
    rows = [
        LabelledRow(f"r{k}", COLOR, k <= 5, {
            "a": GateValue(-5.0 if k == 0 else 0.0, 100.0, True, "at_most", "a"),
            "b": GateValue(float(k), 100.0, True, "at_most", "b"),
        })
        for k in range(12)
    ]
    fitted = fit_gates(rows, {"a": 100.0, "b": 100.0}, 6.0, 0.9)
    assert fitted == {"a": 100.0, "b": 5.5}


def test_no_fitted_limit_is_exactly_zero():
    """A zero limit reads as a yes/no check: the cut between -0.1 and 0.1 is nudged off it."""
    rows = [LabelledRow(f"r{k}", COLOR, v < 0, {"n": GateValue(v, 9.0, True, "at_most", "n")}) for k, v in enumerate([-0.2, -0.1, 0.1, 0.2] * 3)]
    fitted = fit_gates(rows, {"n": 9.0}, 6.0, 0.9)["n"]
    assert fitted != 0 and -0.1 < fitted < 0.1
