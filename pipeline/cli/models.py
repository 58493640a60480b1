"""`python -m pipeline models list|check|tiny`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from pipeline.core import config as config_mod
from pipeline.core import models
from stages.models.tiny import build_tiny


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="the model registry: list, check, pull, lock, verify, build tiny twins", description="Model registry tools.")
    msub = p.add_subparsers(dest="models_command", required=True)
    ls = msub.add_parser("list", help="each registered checkpoint, its size, whether it is locked and present locally")
    ls.add_argument("--lock", help="model lock file (default: models.lock or configs/models.lock)")
    check = msub.add_parser("check", help="load every model of a profile and run one small batch")
    check.add_argument("--profile", default="tiny", help="profile whose models to check (default: tiny)")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    for name, what in (("pull", "download every checkpoint a profile uses and lock it (needs the hub)"),
                       ("lock", "lock the checkpoints already on disk (models.ref.* folders, models.dir, the hub cache)"),
                       ("verify", "check the local files of a profile's checkpoints against the lock")):
        cmd = msub.add_parser(name, help=what)
        cmd.add_argument("--profile", default="gpu", help="profile whose checkpoints (default: gpu)")
        cmd.add_argument("--lock", help="model lock file (default: models.lock or configs/models.lock)")
        cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        if name == "pull":
            cmd.add_argument("--to", help="download into DIR/<family> (run with --set models.dir=DIR); default: the Hugging Face cache")
        if name == "verify":
            cmd.add_argument("--rehash", action="store_true", help="hash every file again, ignoring the size+mtime cache")
    tiny = msub.add_parser("tiny", help="build the tiny random-weight twins")
    tiny.add_argument("--to", help="folder (default: the tiny profile's cache folder)")
    tiny.add_argument("--force", action="store_true", help="rebuild even when present")


def run(args) -> int:
    if args.models_command == "list":
        return list_models(args)
    if args.models_command in ("pull", "lock", "verify"):
        return lock_command(args)
    if args.models_command == "tiny":
        root = Path(args.to) if args.to else models.default_tiny_dir()
        for entry in models.registry().values():
            path, seconds = build_tiny(root, entry, force=args.force)
            print(f"{entry.family:18} {seconds:5.1f}s  {path}")
        return 0
    from pipeline.cli.model_check import check_profile
    from pipeline.engine.ray_runtime import QUIET_ENV

    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)

    try:
        cfg = config_mod.load_config(args.profile, overrides=[config_mod.parse_set(s) for s in args.set])
    except config_mod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = check_profile(cfg)
    failed = [r.family for r in results if not r.ok]
    print(f"{len(results) - len(failed)}/{len(results)} models ok in {time.perf_counter() - start:.1f}s")
    return 1 if failed else 0


def list_models(args) -> int:
    """One line per registry entry: size, precision, revision (the registry's pin, else the
    lock's commit), whether the lock holds it, whether it is in the hub cache."""
    from pipeline.core.model_lock import ModelLockError, lock_path, read_lock

    path = Path(args.lock) if args.lock else lock_path(config_mod.load_config("gpu"))
    try:
        locked = (read_lock(path) or {}).get("models", {})
    except ModelLockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'key':18}{'params':>8}  {'dtype':9}{'revision':12}{'lock':10}{'local':18}ref")
    for entry in models.registry().values():
        held = locked.get(entry.family)
        revision = (entry.revision or (held or {}).get("revision") or "UNPINNED")[:10]
        state = f"locked:{held['source']}" if held else "unlocked"
        print(f"{entry.family:18}{entry.params_b:>7.2f}B  {entry.dtype:9}{revision:12}{state:10}{models.present_locally(entry):18}{entry.ref}")
    return 0


def profile_families(cfg) -> list[str]:
    """The registry families a profile's stages load for every task, and verify's FLUX.1 Kontext."""
    from pipeline.core.task_names import TASK_IDS
    from pipeline.engine.stage_list import build_stage_list

    cfg = {**cfg, "run": {**cfg["run"], "tasks": list(TASK_IDS)}, "gpu": {**cfg["gpu"], "auto_pools": False}}
    families = {family for stage in build_stage_list(cfg) for family in stage.loads}
    return sorted(families | ({"flux_kontext"} if families else set()))


def lock_command(args) -> int:
    from pipeline.cli.model_pull import lock_present, pull
    from pipeline.core.file_hashes import HashCache
    from pipeline.core.model_lock import ModelLockError, check_families, lock_path

    try:
        overrides = [config_mod.parse_set(s) for s in args.set]
        if args.lock:
            overrides.append({"models": {"lock": args.lock}})
        cfg = config_mod.load_config(args.profile, overrides=overrides)
        families = profile_families(cfg)
        if cfg["models"]["source"] != "registry" or not families:
            print(f"profile {args.profile} loads no registry checkpoints: nothing to {args.models_command}")
            return 0
        lock = lock_path(cfg)
        if args.models_command == "pull":
            failed = pull(families, Path(args.to) if args.to else None, lock)
            if args.to and len(failed) < len(families):
                print(f"run with --set models.dir={args.to} to load these files")
            return 1 if failed else 0
        if args.models_command == "lock":
            return 1 if lock_present(cfg, families, lock) else 0
        entries = models.registry()
        problems = check_families(cfg, {f: entries[f].ref for f in families}, HashCache(use=not args.rehash))
    except (config_mod.ConfigError, ModelLockError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    print(f"{len(families) - len({p.split(':')[0] for p in problems})}/{len(families)} models match the lock {lock}")
    return 1 if problems else 0
