"""The served models a command will call (a judge or captioner with backend openai), each probed
once before any work, so that a wrong URL or model name exits 2 before anything is planned,
trained or judged: `run` (before Ray starts), `score`, `verify` and `rejudge`."""

from __future__ import annotations

from typing import Any

from stages.models.server_probe import PROBE_TIMEOUT_S, ServerUnusable, probe_model

SERVED_BLOCKS = ("judge", "captioner")  # config blocks whose backend openai calls a server

__all__ = ["ServerUnusable", "check_servers"]


def check_servers(cfg: dict[str, Any], sections: tuple[str, ...] = SERVED_BLOCKS) -> None:
    """Raise ServerUnusable for the first served block of `sections` whose server does not list
    its model (a command that only judges passes ("judge",): its captioner block is never called)."""
    for section in sections:
        conf = cfg.get(section) or {}
        if conf.get("backend") != "openai" or not conf.get("url") or not conf.get("model"):
            continue  # not served, or incomplete: the stage builder says what is missing
        timeout = min(PROBE_TIMEOUT_S, float(conf.get("timeout_s") or PROBE_TIMEOUT_S))
        probe_model(str(conf["url"]), str(conf["model"]), str(conf.get("api_key_env") or "OPENAI_API_KEY"),
                    what=f"the {section} server", timeout_s=timeout)
