"""`verify`: the editor trained on a run's triplets (or FLUX.1 Kontext) and scored on held-out
edits; the flags become an `editor:` config layer, checked before anything loads.

The run (or exported dataset) is local or on a store by URI, its shards read through its store.
Outputs on a store (the default RUN/verify of a run there, or `--out URI`) are written in a local
temporary folder, seeded with what the store holds there (a rerun resumes from its checkpoints),
and put on the store at the end, also when the command fails, so finished folds and checkpoints
are kept."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from pipeline.cli.common import USAGE_ERROR, judge_flags
from pipeline.core import config as config_mod
from pipeline.core.filesystems import is_remote
from pipeline.core.run_dir import RunDir
from pipeline.core.run_store import RunStore
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

    run = RunDir(args.run_dir)
    folder = run if run.store.remote else Path(run.root)
    try:
        tasks = set(parse_tasks(args.task)) if args.task else None
        with output_folder(run, args.out, run.store.io) as (out, log):  # main put --set io.* in the run's RunDir
            run_verify(VerifyRequest(folder, out, args.rows, args.editor, tasks), cfg, log=log)
    except (config_mod.ConfigError, UnknownTaskError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def _print(msg: str) -> None:
    print(msg, file=sys.stderr)


@contextlib.contextmanager
def output_folder(run: RunDir, out: str | None, io: dict | None) -> Iterator[tuple[Path, Callable[[str], None]]]:
    """The local folder verify writes in, and its log. A local output is that folder itself; one
    on a store is a temporary folder holding what the store has there, put back on the store when
    verify ends (also on failure), with the temporary folder's name in metrics.json and the log
    replaced by the store's."""
    if out is not None and not is_remote(out):
        yield Path(out), _print
        return
    if out is None and not run.store.remote:
        yield Path(run.root) / "verify", _print
        return
    store, prefix = (run.store, "verify") if out is None else (RunStore(out, io), "")
    store.check_reachable()
    shown = store.uri(prefix)
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        local = Path(tmp)
        store.get_folder(prefix, local)
        try:
            yield local, lambda msg: _print(msg.replace(str(local), shown))
        finally:
            for metrics in local.rglob("metrics.json"):  # it names the checkpoints folder
                metrics.write_text(metrics.read_text().replace(str(local), shown))
            store.put_folder(local, prefix)


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
