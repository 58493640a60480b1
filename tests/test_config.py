import pytest

from pipeline.core import config
from pipeline.core.task_names import TASK_IDS, UnknownTaskError, parse_tasks


def test_layers_apply_in_order():
    cfg = config.load_config("cpu", overrides=[config.parse_set("run.shard_size=4"), config.parse_set("run.shard_size=8")])
    assert cfg["run"]["shard_size"] == 8
    assert cfg["profile"] == "cpu"
    assert cfg["tasks"]["color_alteration"]["palette"]  # task files are part of the defaults


@pytest.mark.parametrize(
    "item, message",
    [
        ("run.shard_sise=4", "unknown key 'run.shard_sise'"),
        ("nope=1", "unknown key 'nope'"),
        ("run.shard_size=four", "run.shard_size: expected 'auto' or an integer"),
        ("run.shard_size=0", "run.shard_size: must be at least 1"),
        ("decode.working_size=500", "decode.working_size: must be a multiple of 16"),
        ("run.progress=maybe", "expected true or false"),
        ("tasks.color_alteration.palette=red", "expected a list"),
        ("run=3", "'run' must be a mapping"),
    ],
)
def test_bad_keys_and_values_name_the_key(item, message):
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.load_config("cpu", overrides=[config.parse_set(item)])


def test_config_file_layer_is_validated(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("decode:\n  working_size: 256\n")
    assert config.load_config("cpu", [str(good)])["decode"]["working_size"] == 256
    bad = tmp_path / "bad.yaml"
    bad.write_text("decode:\n  workingsize: 256\n")
    with pytest.raises(config.ConfigError, match="unknown key 'decode.workingsize'"):
        config.load_config("cpu", [str(bad)])


def test_unknown_profile_is_refused():
    with pytest.raises(config.ConfigError, match="unknown profile 'gpux'"):
        config.load_config("gpux")


def test_identity_hash_ignores_execution_keys_only():
    base = config.load_config("cpu")
    moved = config.load_config("cpu", overrides=[{"run": {"out": "/elsewhere", "progress": False}}])
    changed = config.load_config("cpu", overrides=[{"run": {"shard_size": 3}}])
    assert config.identity_hash(base) == config.identity_hash(moved)
    assert config.identity_hash(base) != config.identity_hash(changed)


def test_task_parsing():
    assert parse_tasks("color") == ["color_alteration"]
    assert parse_tasks("tone,color") == ["color_alteration", "tone_transformation"]
    assert parse_tasks("all") == list(TASK_IDS) and len(TASK_IDS) == 11
    assert parse_tasks("subject_add, add") == ["subject_add"]
    with pytest.raises(UnknownTaskError, match="unknown task 'colour'"):
        parse_tasks("colour")
