"""The map from recorded gate names to the config keys of their limits (filters/gate_limits.py)
names every gate the filters record, and each key it names exists in the config; the config
takes a fitted per-task common limit for any task."""

import re
from pathlib import Path

import pytest

from filters import gate_limits
from filters.gates import AT_LEAST, AT_MOST
from filters.tone_gate import STATISTICS
from pipeline.core import config as config_mod
from pipeline.core.task_names import TASK_IDS

FILTERS = Path(gate_limits.__file__).parent
RECORDED = re.compile(r'GateResult\.(at_most|at_least)\(\s*(f?)"([^"]+)"')


def recorded_gates() -> set[tuple[str, str, bool]]:
    found = set()
    for path in FILTERS.rglob("*.py"):
        for direction, fstring, name in RECORDED.findall(path.read_text()):
            found.add((name, direction, bool(fstring)))
    return found


def test_every_recorded_gate_has_a_limit_key_or_is_yes_no():
    gates = recorded_gates()
    assert len(gates) > 40  # the scan found the filters' gates
    schema = config_mod.base_schema()
    for name, direction, is_fstring in gates:
        if name in gate_limits.YES_NO_GATES:
            continue
        if is_fstring:  # the tone gate's per-statistic names
            names = [name.replace("{statistic}", stat).replace("{direction}", d) for stat in STATISTICS for d in ("up", "down", "grey")]
            names = [n for n in names if n.endswith("_grey") == (direction == AT_MOST)]
            tasks = [gate_limits.TONE_TASK]
        else:
            names, tasks = [name], TASK_IDS
        for gate in names:
            keys = [k for k in (gate_limits.limit_key(t, gate, direction) for t in tasks) if k]
            assert keys, f"{gate} ({direction}) has no limit key"
            assert any(_exists(schema, k) for k in keys), f"{gate}: {keys[0].dotted} is not a config key"


def _exists(schema, key) -> bool:
    try:
        gate_limits.default_of(schema, key)
        return True
    except KeyError:
        return False


def test_same_name_other_direction_reads_another_key():
    assert gate_limits.limit_key("motion_change", "background_change", AT_MOST).dotted == "tasks.motion_change.gate.max_background_change"
    assert gate_limits.limit_key("background_change", "background_change", AT_LEAST).dotted == "tasks.background_change.gate.min_background_change"
    assert gate_limits.limit_key("tone_transformation", "warmth_down", AT_LEAST).path[-2:] == ("min_shift", "warmth")
    assert gate_limits.limit_key("color_alteration", "target_size_mismatch", AT_MOST) is None


def test_config_takes_any_common_limit_for_any_task():
    layer = {"common_gates": {"per_task": {"text_modification": {"max_noise_increase": 2, "min_dino": 0.5}}}}
    cfg = config_mod.load_config("cpu", overrides=[layer])
    assert cfg["common_gates"]["per_task"]["text_modification"] == {"max_noise_increase": 2.0, "min_dino": 0.5}
    plain = config_mod.load_config("cpu")
    assert "text_modification" not in plain["common_gates"]["per_task"]  # the defaults stay as written
    for bad in ({"nonsense_task": {"max_noise_increase": 2.0}}, {"color_alteration": {"max_bogus": 1.0}}, {"color_alteration": {"max_shift": "x"}}):
        with pytest.raises(config_mod.ConfigError):
            config_mod.load_config("cpu", overrides=[{"common_gates": {"per_task": bad}}])
