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
    p = sub.add_parser("models", help="the model registry: list, check, build tiny twins", description="Model registry tools.")
    msub = p.add_subparsers(dest="models_command", required=True)
    msub.add_parser("list", help="each registered checkpoint, its size and whether it is present locally")
    check = msub.add_parser("check", help="load every model of a profile and run one small batch")
    check.add_argument("--profile", default="tiny", help="profile whose models to check (default: tiny)")
    check.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    tiny = msub.add_parser("tiny", help="build the tiny random-weight twins")
    tiny.add_argument("--to", help="folder (default: the tiny profile's cache folder)")
    tiny.add_argument("--force", action="store_true", help="rebuild even when present")


def run(args) -> int:
    if args.models_command == "list":
        print(f"{'key':18}{'params':>8}  {'dtype':9}{'revision':12}{'local':18}ref")
        for entry in models.registry().values():
            revision = (entry.revision or "UNPINNED")[:10]
            print(f"{entry.family:18}{entry.params_b:>7.2f}B  {entry.dtype:9}{revision:12}{models.present_locally(entry):18}{entry.ref}")
        return 0
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
