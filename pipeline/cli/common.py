"""What the command modules share: the exit codes, and `--judge-url/--judge-model` as a config
layer (`run`, `score` and `verify` all take them)."""

from __future__ import annotations

USAGE_ERROR, RUN_FAILED = 2, 1


def judge_flags(args) -> dict:
    """`--judge-url/--judge-model` as a config layer: a served (OpenAI-compatible) judge."""
    if not (args.judge_url or args.judge_model):
        return {}
    judge = {"backend": "openai"}
    if args.judge_url:
        judge["url"] = args.judge_url
    if args.judge_model:
        judge["model"] = args.judge_model
    return {"judge": judge}
