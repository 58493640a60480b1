"""How the engine cuts a run: shard sizes, light-task slots, shards to writers."""

import pytest

from pipeline.core import config
from pipeline.engine.ray_plan import light_task_cpus, writer_of
from pipeline.engine.runner import AUTO_MAX_SHARD, shard_size_for
from pipeline.engine.stage_list import build_stage_list


@pytest.mark.parametrize("inputs, size", [(1, 1), (6, 1), (24, 1), (64, 1), (65, 2), (640, 10), (10_000, AUTO_MAX_SHARD)])
def test_auto_shard_size_spreads_commits_and_caps_the_shard(inputs, size):
    assert shard_size_for("auto", inputs) == size


def test_a_given_shard_size_is_kept():
    assert shard_size_for(7, 3) == 7
    assert config.load_config("cpu")["run"]["shard_size"] == config.AUTO


@pytest.mark.parametrize("free, cpus", [(2.0, 1.0), (1.5, 0.75), (0.5, 0.5), (0.2, 0.2), (15.5, 0.96), (3.4, 1.13), (2.0 - 1.3, 0.7)])
def test_light_tasks_hold_whole_slots_of_the_free_cpus(free, cpus):
    assert light_task_cpus(free) == pytest.approx(cpus)
    slots = max(1, int(free + 0.5))
    assert light_task_cpus(free) * slots <= free  # never a hair over what is free: Ray would never schedule it
    assert light_task_cpus(free) * slots > free - 0.01 * slots  # and nothing much left idle


def test_every_writer_gets_shards_and_each_shard_one_writer():
    owners = [writer_of(shard, 3) for shard in range(9)]
    assert sorted(set(owners)) == [0, 1, 2] and owners[:3] == [0, 1, 2]  # the first commits come from all writers


def test_writer_count_is_in_the_stage_list_and_not_in_the_run_identity():
    one = config.load_config("cpu", overrides=[config.parse_set("ray.writers=1")])
    four = config.load_config("cpu", overrides=[config.parse_set("ray.writers=4")])
    assert build_stage_list(four)[-1].resources.concurrency == 4
    assert config.identity_hash(one) == config.identity_hash(four)
    with pytest.raises(config.ConfigError, match="ray.writers: must be at least 1"):
        config.load_config("cpu", overrides=[config.parse_set("ray.writers=0")])


def test_a_light_chain_runs_its_stages_in_order_over_one_conversion():
    from pipeline.core import schema
    from pipeline.engine.ray_plan import _LightChain

    seen = []

    def step(tag):
        def run(rows):
            seen.append((tag, type(rows).__name__))
            return [{**r, "reason": (r.get("reason") or "") + tag} for r in rows]

        return run

    table = schema.rows_to_table([{"sample_id": "a", "task": "t", "status": schema.PENDING, "reason": None}])
    out = _LightChain([step("1"), step("2"), step("3")])(table)
    assert out.column("reason").to_pylist() == ["123"]
    assert seen == [("1", "list"), ("2", "list"), ("3", "list")]  # rows between steps, never a table


def test_a_plan_without_room_for_a_light_task_is_refused_before_it_can_hang():
    from pipeline.core.stage import Resources, Stage
    from pipeline.engine.engine_stages import WriteShards
    from pipeline.engine.resource_check import NotEnoughResources, check_fits

    class Pool(Stage):
        uses_model = True
        resources = Resources(num_cpus=0.2, num_gpus=1.0, concurrency=8)

    class Light(Stage):
        resources = Resources(num_cpus=0.25)

    with pytest.raises(NotEnoughResources, match="hold 1.85 CPUs and the light stages need 0.25 more"):
        check_fits([Light(), Pool(), WriteShards(0.25, 1)], {"CPU": 2.0, "GPU": 8.0})
    # less than a whole core left is enough: the light tasks take what is free (light_task_cpus)
    assert check_fits([Light(), Pool(), WriteShards(0.1, 1)], {"CPU": 2.0, "GPU": 8.0}) == pytest.approx(0.3)
