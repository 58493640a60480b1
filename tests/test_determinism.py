"""A row's content depends on its input (bytes and path), its task, the config and the seed: not
on the shard size, `--limit` or the other inputs of the run."""

import hashlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.core import config
from pipeline.postrun.finish import run_pipeline

TASKS = ["color_alteration", "tone_transformation", "style_transfer", "text_modification"]


def _rows(run_dir: Path) -> dict[str, tuple]:
    rows = {}
    for folder in ("candidates", "errors"):
        for path in sorted((run_dir / folder).glob("*.parquet")):
            table = pq.read_table(path, columns=["sample_id", "status", "target_image", "instruction_en", "edit", "source_uri"])
            for row in table.to_pylist():
                target = hashlib.sha256(row["target_image"]["bytes"]).hexdigest() if row["target_image"] else None
                rows[row["sample_id"]] = (row["status"], target, row["instruction_en"], row["edit"], row["source_uri"])
    return rows


def _run(out: Path, **sets) -> dict[str, tuple]:
    overrides = [{"run": {"out": str(out), "tasks": TASKS, "progress": False, "report": False}}]
    overrides += [config.parse_set(f"{k}={v}") for k, v in {"decode.working_size": 192, **sets}.items()]
    run_pipeline(config.load_config("cpu", overrides=overrides), log=lambda m: None)
    return _rows(out)


@pytest.fixture(scope="module")
def one_per_shard(ray_address, tmp_path_factory):
    return _run(tmp_path_factory.mktemp("det") / "size1", **{"run.shard_size": 1, "ray.writers": 3})


def test_same_rows_whatever_the_shard_size_and_writer_count(one_per_shard, tmp_path):
    seven = _run(tmp_path / "size7", **{"run.shard_size": 7, "ray.writers": 1})
    assert len(one_per_shard) > 20
    assert seven == one_per_shard


def test_limit_gives_the_same_rows_for_the_inputs_it_keeps(one_per_shard, tmp_path):
    first = _run(tmp_path / "limit", **{"run.shard_size": 2, "run.limit": 3})
    kept = {uri for *_, uri in first.values()}
    assert 0 < len(kept) < len({uri for *_, uri in one_per_shard.values()})
    assert first == {k: v for k, v in one_per_shard.items() if v[-1] in kept}
