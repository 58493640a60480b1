"""`--set io.KEY=VALUE` on the commands that read a finished run (status, select, report, export,
sheet, verify, calibrate, review, rejudge): how to reach a run on a store (an S3-compatible
endpoint, anonymous reads, timeouts) without environment variables. The settings are checked as
`run` checks them (`config.py`) and travel with the run's `RunDir`, so every read of the run,
and every write into it, use them."""

from __future__ import annotations

from typing import Any

from pipeline.core import config as config_mod

READS_RUN_WITH_IO = ("status", "select", "report", "export", "sheet", "verify", "calibrate", "review", "rejudge")
# the other config sections a command's --set takes besides io.*; "*": any, checked by the command
# itself (verify's --set is a config layer; rejudge's takes judge.* and says why nothing else)
OTHER_SETS = {"select": ("select",), "rejudge": ("*",), "verify": ("*",)}


def add_io_set(parser, help_extra: str = "") -> None:
    parser.add_argument("--set", action="append", default=[], metavar="io.KEY=VALUE",
                        help="how to reach a run on a store, e.g. io.endpoint_url=http://host:9000" + help_extra)


def io_settings(command: str, sets: list[str], also: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The io block from the --set items whose key is io.* (or a section in `also`, by default
    the command's OTHER_SETS); any other key is a ConfigError naming it: these commands take
    their settings from the run."""
    also = OTHER_SETS.get(command, ()) if also is None else also
    io_layers = []
    for item in sets:
        key = item.split("=", 1)[0]
        section = key.split(".", 1)[0]
        if section not in ("io", *also) and "*" not in also:
            allowed = " and ".join(f"{s}.*" for s in ("io", *also))
            raise config_mod.ConfigError(f"--set {key}: `{command}` takes only {allowed} keys")
        if section == "io":
            io_layers.append(config_mod.parse_set(item))
    return config_mod.load_config(overrides=io_layers)["io"]


def without_io(sets: list[str]) -> list[str]:
    """The --set items that are not io.*: a command's own settings."""
    return [item for item in sets if item.split("=", 1)[0].split(".", 1)[0] != "io"]
