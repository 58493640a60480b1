"""What the command modules share: the exit codes, `--judge-url/--judge-model` as a config layer
(`run`, `score` and `verify` all take them) and `--captioner-url/--captioner-model` (`run`,
`stages`)."""

from __future__ import annotations

USAGE_ERROR, RUN_FAILED = 2, 1


def served_flags(section: str, url: str | None, model: str | None) -> dict:
    """A URL and a model name as a config layer: `section` served by an OpenAI-compatible server."""
    if not (url or model):
        return {}
    conf = {"backend": "openai"}
    if url:
        conf["url"] = url
    if model:
        conf["model"] = model
    return {section: conf}


def judge_flags(args) -> dict:
    """`--judge-url/--judge-model` as a config layer: a served (OpenAI-compatible) judge."""
    return served_flags("judge", args.judge_url, args.judge_model)


def captioner_flags(args) -> dict:
    """`--captioner-url/--captioner-model` as a config layer: a served captioner."""
    return served_flags("captioner", args.captioner_url, args.captioner_model)
