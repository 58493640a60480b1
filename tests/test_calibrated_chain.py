"""A tiny calibrated chain (bench/calibrated_chain.py's synthetic stages, ms-level costs) through
the real engine: every unit's rows arrive, the fan-out makes its count, each row passed every
stage in order and each stage left its provenance. Counts and order only, never timing."""

import json
from collections import defaultdict

from bench.bench_common import make_tiny_inputs
from bench.calibrated_chain import TASK, BusyStage, DeviceStage, base_config, read_rows
from pipeline.postrun.finish import run_pipeline

K = 3
INPUTS = 5


def test_tiny_calibrated_chain_through_the_engine(ray_address, tmp_path):
    chain = [
        BusyStage("prep", 1, batch_size=2, num_cpus=0.25),
        BusyStage("propose", 1, fan_out=K, num_cpus=0.25),
        DeviceStage("device", 0.001, batch_size=4, concurrency=1, num_gpus=0.0, num_cpus=0.25),  # an actor pool
        BusyStage("finish", 1, batch_size=3, num_cpus=0.25, finish=True),
    ]
    folder = make_tiny_inputs(tmp_path / "in", INPUTS)
    cfg = base_config(folder, tmp_path / "run", num_cpus=2, shard_size=2)
    result = run_pipeline(cfg, log=lambda m: None, task_stages=chain)
    assert result.manifest["complete"]
    assert len(list((result.run_dir / "stats" / "shards").glob("*.json"))) == 3  # 5 inputs, 2 per shard

    rows = read_rows(result.run_dir)
    assert all(r["status"] in ("ok", "rejected") for r in rows), [(r["status"], r["reason"]) for r in rows]
    assert len(rows) == INPUTS * K and len({r["sample_id"] for r in rows}) == len(rows)
    by_input = defaultdict(list)
    for row in rows:
        by_input[row["source_uri"]].append(row)
    assert len(by_input) == INPUTS
    names = [s.name for s in chain]
    for uri, group in by_input.items():
        edits = [json.loads(r["edit"]) for r in group]
        assert sorted(e["index"] for e in edits) == list(range(K)), uri  # the fan-out's k candidates, once each
        for row, edit in zip(group, edits):
            assert edit["chain"] == names  # every stage, in the chain's order
            stages = json.loads(row["provenance"])["stages"]
            for name in ["decode", *names, "common_gates"]:
                assert name in stages, (name, sorted(stages))
            assert 1 <= stages["device"]["batch"] <= 4
    # a shard is one block, read and run through the light stages by one task: the first stage saw
    # each shard's inputs together (5 inputs in shards of 2, 2 and 1), not one block per input
    prep_batch = sorted(json.loads(group[0]["provenance"])["stages"]["prep"]["batch"] for group in by_input.values())
    assert prep_batch == [1, 2, 2, 2, 2]
    counts = {task: sum(c.values()) for task, c in result.manifest["tasks"].items()}
    assert counts == {TASK: INPUTS * K}
