"""Layered YAML configuration: defaults <- task files <- profile <- --config <- --set.

Every key must exist in the defaults or a task file; values keep the type of their default."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.input_guard import FOLLOW
from pipeline.core.task_names import TASK_IDS

CONFIG_DIR = Path(os.environ.get("PIPELINE_CONFIG_DIR", Path(__file__).resolve().parents[2] / "configs"))

AUTO = "auto"

# Keys that change how a run executes but not what it produces: a rerun may change them freely.
EXECUTION_KEYS = (
    "run.out", "run.progress", "ray.address", "ray.num_cpus", "ray.writers", "gpu", "select", "editor",
    "models.lock", "models.allow_unlocked", "io",
)
# `select` is left out because the selection phase keeps its own identity (selection/done.json);
# `editor` configures `verify`, which reads a run and never changes it; `gpu` and `ray.writers`
# only size and schedule the work (a row's content never depends on them); the model lock is only
# checked, the files it locks are what count; `io` says how to reach the input (endpoint,
# timeouts), not what it is: `input.path` names that


# string keys whose words read as YAML booleans: `follow_symlinks: false` means the word "false"
WORD_KEYS = ("input.follow_symlinks",)


class ConfigError(ValueError):
    pass


def read_yaml(path: Path, what: str = "config file") -> dict[str, Any]:
    """A YAML mapping, or a ConfigError naming `what` is missing or malformed."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_value(key: str, default: Any, value: Any) -> Any:
    if default is None or value is None:
        return value
    if default == AUTO:  # a number the run works out unless one is given
        if value != AUTO and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{key}: expected {AUTO!r} or an integer, got {value!r}")
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
    elif isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
    return value


def _validated(schema: dict[str, Any], layer: dict[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            raise ConfigError(f"{where}: unknown key {dotted!r}")
        default = schema[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {dotted!r} must be a mapping")
            # an empty mapping in the defaults is open: its keys belong to a library (io.options)
            out[key] = copy.deepcopy(value) if not default else _validated(default, value, where, dotted + ".")
        else:
            if isinstance(value, dict):
                raise ConfigError(f"{where}: {dotted!r} is a single value, not a mapping")
            if dotted in WORD_KEYS and isinstance(value, bool):
                value = str(value).lower()
            out[key] = _check_value(f"{where}: {dotted}", default, value)
    return out


def _dotted_to_nested(key: str, value: Any) -> dict[str, Any]:
    nested: dict[str, Any] = value
    for part in reversed(key.split(".")):
        if not part:
            raise ConfigError(f"--set: malformed key {key!r}")
        nested = {part: nested}
    return nested


def parse_set(item: str) -> dict[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return _dotted_to_nested(key.strip(), value)


def base_schema() -> dict[str, Any]:
    schema = read_yaml(CONFIG_DIR / "defaults.yaml")
    # every task's and every filter's keys are part of the defaults
    layers = sorted((CONFIG_DIR / "tasks").glob("*.yaml")) + sorted((CONFIG_DIR / "filters").glob("*.yaml"))
    for layer in layers + [CONFIG_DIR / "editor.yaml"]:
        schema = _deep_merge(schema, read_yaml(layer))
    return schema


def validation_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema layers are checked against: the defaults, with common_gates.per_task open to
    every task and every common or model gate limit (the defaults list only the tasks they change,
    and a fitted layer, `calibrate`'s, may set any). Values keep the type of the shared limit."""
    gates = schema.get("common_gates")
    if not gates:
        return schema
    out = copy.deepcopy(schema)
    shared = {**gates["limits"], **gates["model"]}
    per_task = out["common_gates"]["per_task"]
    for task in TASK_IDS:
        per_task[task] = {**shared, **(per_task.get(task) or {})}
    return out


def profiles() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "profiles").glob("*.yaml"))


def load_config(
    profile: str | None = None,
    config_files: list[str] | None = None,
    overrides: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Resolve the layers into one validated mapping. `overrides` are nested dicts (CLI flags,
    --set items) applied last, in order."""
    schema = base_schema()
    cfg = copy.deepcopy(schema)
    profile = profile or cfg["profile"]
    profile_path = CONFIG_DIR / "profiles" / f"{profile}.yaml"
    if not profile_path.exists():
        raise ConfigError(f"unknown profile {profile!r}; choose from: {', '.join(profiles())}")
    layers = [(str(profile_path), read_yaml(profile_path))]
    layers += [(path, read_yaml(Path(path))) for path in config_files or []]
    layers += [("--set", layer) for layer in overrides or []]
    checked = validation_schema(schema)
    for where, layer in layers:
        cfg = _deep_merge(cfg, _validated(checked, layer, where))
    cfg["profile"] = profile
    _check_ranges(cfg)
    return cfg


def _check_ranges(cfg: dict[str, Any]) -> None:
    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{key}: {what}")

    shard_size = cfg["run"]["shard_size"]
    need(shard_size == AUTO or shard_size >= 1, "run.shard_size", "must be at least 1")
    need(cfg["ray"]["writers"] >= 1, "ray.writers", "must be at least 1")
    limit = cfg["run"]["limit"]
    need(limit is None or (isinstance(limit, int) and limit >= 1), "run.limit", "must be a positive integer")
    size = cfg["decode"]["working_size"]
    need(size >= 64 and size % 16 == 0, "decode.working_size", "must be a multiple of 16, at least 64")
    need(cfg["decode"]["min_side"] >= 1, "decode.min_side", "must be at least 1")
    need(cfg["decode"]["max_aspect"] >= 1, "decode.max_aspect", "must be at least 1")
    need(cfg["decode"]["max_bytes"] >= 1, "decode.max_bytes", "must be at least 1")
    need(cfg["input"]["follow_symlinks"] in FOLLOW, "input.follow_symlinks", f"must be one of {', '.join(FOLLOW)}")
    need(cfg["input"]["format"] in INPUT_FORMATS, "input.format", f"must be one of {', '.join(INPUT_FORMATS)}")
    need(cfg["io"]["timeout_s"] > 0, "io.timeout_s", "must be positive")
    need(cfg["io"]["retries"] >= 1, "io.retries", "must be at least 1")
    _check_io_options(cfg["io"]["options"])


INPUT_FORMATS = ("auto", "manifest")
SECRET_WORDS = ("key", "secret", "token", "password", "credential")


def _check_io_options(options: dict[str, Any], prefix: str = "io.options") -> None:
    """The config is saved in the run folder, so it may not carry credentials."""
    for key, value in options.items():
        dotted = f"{prefix}.{key}"
        if isinstance(value, dict):
            _check_io_options(value, dotted)
        elif any(word in str(key).lower() for word in SECRET_WORDS):
            raise ConfigError(
                f"{dotted}: credentials are not taken from the config (it is saved with the run); use the store's own "
                "chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, an instance role, or Google's application default credentials"
            )


def get(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def identity_hash(cfg: dict[str, Any]) -> str:
    """What makes two runs the same run: every key but the execution-only ones."""
    ident = copy.deepcopy(cfg)
    for dotted in EXECUTION_KEYS:
        *parents, leaf = dotted.split(".")
        node = ident
        for part in parents:
            node = node[part]
        node.pop(leaf, None)
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def dump(cfg: dict[str, Any]) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)
