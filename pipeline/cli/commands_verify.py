"""`verify`: the editor trained on a run's triplets (or FLUX.1 Kontext) and scored on held-out
edits; the flags become an `editor:` config layer, checked before anything loads."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.cli.common import USAGE_ERROR, judge_flags
from pipeline.core import config as config_mod
from pipeline.core.task_names import UnknownTaskError, parse_tasks


def cmd_verify(args) -> int:
    from pipeline.engine.servers import ServerUnusable, check_servers

    flags: dict = {"editor": {"train": {}}}
    if args.steps is not None:
        flags["editor"]["train"]["steps"] = args.steps
    if args.size is not None:
        flags["editor"]["size"] = args.size
    if args.folds is not None:
        flags["editor"]["folds"] = args.folds
    if args.no_control:
        flags["editor"]["control"] = False
    flags.update(judge_flags(args))
    try:
        cfg = config_mod.load_config(args.profile, args.config, [*(config_mod.parse_set(s) for s in args.set), flags])
        check_editor_config(cfg["editor"])
        check_servers(cfg, ("judge",))  # a wrong --judge-url exits 2 before torch loads and the training starts
    except (config_mod.ConfigError, ServerUnusable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    from editor.data import DataError
    from editor.verify import VerifyRequest, run_verify

    try:
        tasks = set(parse_tasks(args.task)) if args.task else None
        run = Path(args.run_dir)
        request = VerifyRequest(run, Path(args.out) if args.out else run / "verify", args.rows, args.editor, tasks)
        run_verify(request, cfg, log=lambda msg: print(msg, file=sys.stderr))
    except (config_mod.ConfigError, UnknownTaskError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def check_editor_config(ecfg: dict) -> None:
    if ecfg["train"]["steps"] < 1:
        raise config_mod.ConfigError("editor.train.steps: must be at least 1")
    if ecfg["size"] < 8:
        raise config_mod.ConfigError("editor.size: must be at least 8")
    if ecfg["folds"] < 1:
        raise config_mod.ConfigError("editor.folds: must be at least 1 (1: one held-out split)")
    if not 0 < ecfg["held_out"] < 1:
        raise config_mod.ConfigError("editor.held_out: must be between 0 and 1")
    if not 0 <= ecfg["train"]["drop_instruction"] < 1:
        raise config_mod.ConfigError("editor.train.drop_instruction: must be in [0, 1)")
    if ecfg["guidance"] != 1 and ecfg["train"]["drop_instruction"] <= 0:
        raise config_mod.ConfigError("editor.guidance: guiding needs a model that has seen rows without their instruction; "
                                     "set editor.train.drop_instruction (e.g. 0.1)")
    if not 0 < ecfg["sample_start_t"] <= 1:
        raise config_mod.ConfigError("editor.sample_start_t: must be in (0, 1]")
