
import time

from pipeline.core import schema
from pipeline.core.stage import Stage
from pipeline.engine.stage_runner import run_stage


def _row(i, task="color_alteration", status=schema.PENDING):
    return {"sample_id": f"s{i}", "task": task, "status": status, "_unit": f"0:{i}:{task}", "_unit_rows": 1, "value": i}


class Doubler(Stage):
    name = "doubler"

    def __init__(self, bad=()):
        self.bad = set(bad)
        self.batches = []

    def process_batch(self, rows):
        self.batches.append(len(rows))
        if any(r["value"] in self.bad for r in rows):
            raise ValueError("cannot double a cursed value")
        return [{**r, "value": r["value"] * 2} for r in rows]


def test_a_failing_row_is_isolated_and_the_rest_survive():
    stage = Doubler(bad={2})
    out = run_stage(stage, [_row(i) for i in range(4)])
    by_id = {r["sample_id"]: r for r in out}
    assert by_id["s2"]["status"] == schema.ERROR
    assert by_id["s2"]["reason"] == "doubler: ValueError: cannot double a cursed value"
    assert [by_id[f"s{i}"]["value"] for i in (0, 1, 3)] == [0, 2, 6]
    assert stage.batches == [4, 1, 1, 1, 1]  # whole batch, then row by row
    assert schema.loads(by_id["s0"]["provenance"])["stages"]["doubler"]["seconds"] >= 0


def test_rows_already_failed_or_of_other_tasks_pass_untouched():
    stage = Doubler()
    stage.tasks = ("color_alteration",)
    rows = [_row(0), _row(1, status=schema.ERROR), _row(2, task="tone_transformation")]
    out = {r["sample_id"]: r for r in run_stage(stage, rows)}
    assert out["s0"]["value"] == 0 * 2 and out["s1"]["value"] == 1 and out["s2"]["value"] == 2
    assert stage.batches == [1]


class Proposer(Stage):
    name = "proposer"
    fans_out = True

    def process_row(self, row):
        if row["value"] == 3:
            raise RuntimeError("boom")
        return [{**row, "sample_id": f"{row['sample_id']}-{k}"} for k in range(row["value"])]


def test_fan_out_counts_rows_per_unit_and_never_loses_a_unit():
    out = run_stage(Proposer(), [_row(i) for i in range(4)])
    units = {}
    for r in out:
        units.setdefault(r["_unit"], []).append(r)
    assert sorted(len(v) for v in units.values()) == [1, 1, 1, 2]
    assert all(r["_unit_rows"] == len(units[r["_unit"]]) for r in out)
    assert units["0:0:color_alteration"][0]["status"] == schema.SKIPPED  # proposed nothing
    assert units["0:3:color_alteration"][0]["status"] == schema.ERROR


def test_process_row_not_implemented_is_an_error_row():
    class Empty(Stage):
        name = "empty"

    out = run_stage(Empty(), [_row(0)])
    assert out[0]["status"] == schema.ERROR and "NotImplementedError" in out[0]["reason"]


class MemoryHungry(Stage):
    """Runs out of memory on any batch larger than `fits` rows, like a GPU stage would."""

    name = "hungry"

    def __init__(self, fits):
        self.fits = fits
        self.calls = []

    def process_batch(self, rows):
        self.calls.append([r["sample_id"] for r in rows])
        if len(rows) > self.fits:
            import torch

            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [{**r, "value": -r["value"]} for r in rows]


def test_out_of_memory_halves_the_micro_batch_and_retries_the_same_rows():
    stage = MemoryHungry(fits=2)
    rows = [_row(i) for i in range(8)]
    out = run_stage(stage, rows)
    assert all(r["status"] == schema.PENDING for r in out)
    assert sorted(r["value"] for r in out) == [-i for i in range(7, -1, -1)]
    assert [len(c) for c in stage.calls] == [8, 4, 2, 2, 4, 2, 2]
    assert sorted(sid for c in stage.calls if len(c) == 2 for sid in c) == sorted(r["sample_id"] for r in rows)


def test_a_single_row_that_does_not_fit_becomes_an_error_row():
    stage = MemoryHungry(fits=0)
    out = run_stage(stage, [_row(0), _row(1)])
    assert [r["status"] for r in out] == [schema.ERROR, schema.ERROR]
    assert "OutOfMemoryError" in out[0]["reason"]


def test_a_stage_sees_the_states_it_accepts():
    stage = Doubler()
    stage.accepts = ("ok", "rejected")
    rows = [_row(0), _row(1, status=schema.OK), _row(2, status=schema.REJECTED), _row(3, status=schema.ERROR)]
    out = {r["sample_id"]: r["value"] for r in run_stage(stage, rows)}
    assert out == {"s0": 0, "s1": 2, "s2": 4, "s3": 3}


class Busy(Stage):
    """Spends a known amount of CPU per row."""

    name = "busy"

    def process_row(self, row):
        end = time.process_time() + 0.02
        while time.process_time() < end:
            pass
        return row


def test_timings_record_cpu_and_a_fan_out_splits_what_came_before():
    rows = run_stage(Busy(), [_row(4)])
    before = schema.loads(rows[0]["provenance"])["stages"]["busy"]
    assert before["cpu_seconds"] >= 0.015 and before["seconds"] >= before["cpu_seconds"] * 0.5
    out = run_stage(Proposer(), rows)
    assert len(out) == 4
    shares = [schema.loads(r["provenance"])["stages"]["busy"] for r in out]
    # summed over the candidates, the stage before the fan-out counts once
    assert abs(sum(s["cpu_seconds"] for s in shares) - before["cpu_seconds"]) < 1e-4
    assert abs(sum(s["seconds"] for s in shares) - before["seconds"]) < 1e-4
