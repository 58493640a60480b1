"""deploy/ and the cluster runbook, checked for shape against this CLI: the KubeRay RayJob's
entrypoint and every `python -m pipeline` command in docs/CLUSTER.md parse with the CLI's own
parser and config (a renamed flag or key fails here), the runtime_envs are ones Ray accepts,
and no credential is written in either file. Parsing only: no cluster starts."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
import yaml
from ray.runtime_env import RuntimeEnv

from pipeline.cli.commands_run import _run_config
from pipeline.cli.main import build_parser
from pipeline.core import config as config_mod

REPO = Path(__file__).resolve().parent.parent
RAYJOB = REPO / "deploy" / "rayjob.yaml"
RUNTIME_ENV = REPO / "deploy" / "runtime_env.yaml"
RUNBOOK = REPO / "docs" / "CLUSTER.md"

CREDENTIAL_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.I)
CREDENTIAL_TEXT = [
    re.compile(r"AKIA[0-9A-Z]{16}"),  # an AWS access key id
    re.compile(r"\b(hf|sk)[-_][A-Za-z0-9]{20,}"),  # Hugging Face and OpenAI-style keys
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # user:password inside a URL
    re.compile(r"(?i)aws_secret_access_key\s*[:=]\s*\S"),
]


def _rayjob() -> dict:
    docs = [d for d in yaml.safe_load_all(RAYJOB.read_text()) if d is not None]
    assert len(docs) == 1, "deploy/rayjob.yaml holds one document: the RayJob (a Secret never lives beside it)"
    return docs[0]


def _strict(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """No abbreviated flags, in the parser and its subcommands: a flag renamed to a longer name
    would otherwise still accept the old one as its prefix."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _strict(sub)
    return parser


def _parse(argv: list[str]):
    """The CLI's own parser; a usage error is a test failure naming the command, not SystemExit."""
    try:
        return _strict(build_parser()).parse_args(argv)
    except SystemExit:
        pytest.fail(f"this CLI does not accept: python -m pipeline {shlex.join(argv)}")


def _check_settings(args) -> None:
    """The command's --set keys and values, through the config loader (unknown keys are refused)."""
    if args.command == "run":
        _run_config(args)
    elif getattr(args, "set", None):
        overrides = [config_mod.parse_set(item) for item in args.set]
        config_mod.load_config(getattr(args, "profile", None), getattr(args, "config", None), overrides)


def _entrypoint_args(entrypoint: str):
    argv = shlex.split(entrypoint)
    assert argv[:3] == ["python", "-m", "pipeline"], entrypoint
    return _parse(argv[3:])


def _containers(spec: dict) -> list[dict]:
    cluster = spec["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for group in groups for c in group["template"]["spec"]["containers"]]


def _gpus(group: dict) -> int:
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    return int(limits.get("nvidia.com/gpu", 0))


def test_rayjob_is_a_kuberay_rayjob_with_a_head_and_a_gpu_group():
    job = _rayjob()
    assert job["apiVersion"] == "ray.io/v1"
    assert job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"]
    gpu_groups = [g for g in cluster["workerGroupSpecs"] if _gpus(g) > 0]
    assert gpu_groups, "a worker group with nvidia.com/gpu limits"
    for group in gpu_groups:
        # the pool plan is made for a fixed GPU count when the run starts
        assert group["replicas"] == group["minReplicas"] == group["maxReplicas"], group["groupName"]


def test_rayjob_entrypoint_is_this_cli_and_matches_the_cluster():
    spec = _rayjob()["spec"]
    args = _entrypoint_args(spec["entrypoint"])
    assert args.command == "run"
    assert args.address == "auto"  # joins the cluster the job runs on
    assert args.no_progress
    assert args.input.startswith("s3://") and args.out.startswith("s3://"), "every node reaches the run folder"
    cfg = _run_config(args)  # the --set keys exist and have the right types
    workers = [g for g in spec["rayClusterSpec"]["workerGroupSpecs"] if _gpus(g) > 0]
    assert cfg["gpu"]["nodes"] * cfg["gpu"]["gpus_per_node"] == sum(g["replicas"] * _gpus(g) for g in workers)
    assert cfg["gpu"]["nodes"] == sum(g["replicas"] for g in workers)
    mounts = [{m["mountPath"] for m in c.get("volumeMounts", [])} for c in _containers(spec)]
    # the driver on the head checks the weights against the lock; the GPU workers load them
    assert all(cfg["models"]["dir"] in paths for paths in mounts), "models.dir is mounted on every pod"


@pytest.mark.parametrize("source", ["rayjob", "runtime_env.yaml"])
def test_runtime_env_is_one_ray_accepts(source):
    env = yaml.safe_load(_rayjob()["spec"]["runtimeEnvYAML"] if source == "rayjob" else RUNTIME_ENV.read_text())
    assert isinstance(env, dict)
    unknown = set(env) - RuntimeEnv.known_fields  # RuntimeEnv itself lets unknown keys through, as plugins
    assert not unknown, f"not runtime_env fields: {sorted(unknown)}"
    RuntimeEnv(**env)  # type checks: env_vars must map strings to strings
    assert env["env_vars"]["HF_HUB_OFFLINE"] == "1", "no worker asks the hub for weights at run time"
    assert not [k for k in env["env_vars"] if CREDENTIAL_NAME.search(k)], "the dashboard shows a job's runtime_env"


def test_no_literal_credentials_in_deploy():
    for container in _containers(_rayjob()["spec"]):
        for var in container.get("env", []):
            if CREDENTIAL_NAME.search(var["name"]):
                assert "value" not in var, f"{container['name']}: {var['name']} is written in the manifest"
                assert var["valueFrom"]["secretKeyRef"]["name"], var["name"]
    for path in (RAYJOB, RUNTIME_ENV):
        text = path.read_text()
        for pattern in CREDENTIAL_TEXT:
            assert not pattern.search(text), f"{path.name}: {pattern.pattern}"


def _runbook_commands() -> list[str]:
    """Each shell line of the runbook's ```bash blocks, continuation lines joined."""
    blocks, block, in_fence, in_bash = [], [], False, False
    for line in RUNBOOK.read_text().splitlines():
        if not line.startswith("```"):
            if in_bash:
                block.append(line)
        elif in_fence:
            if in_bash:
                blocks.append("\n".join(block))
            in_fence = in_bash = False
        else:
            in_fence, in_bash, block = True, line.strip() == "```bash", []
    lines = []
    for block in blocks:
        lines += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def _pipeline_argv(line: str) -> list[str]:
    """The arguments after `python -m pipeline`, up to a shell operator or a comment."""
    words = shlex.split(line.split("python -m pipeline", 1)[1], comments=True)
    stop = next((i for i, w in enumerate(words) if w in ("|", "||", "&&", ";", ">", "2>&1")), len(words))
    return words[:stop]


def test_every_pipeline_command_in_the_runbook_parses():
    commands = [_pipeline_argv(line) for line in _runbook_commands() if "python -m pipeline" in line]
    assert len(commands) >= 8, "the runbook's commands were not found"
    for argv in commands:
        _check_settings(_parse(argv))


def test_runbook_names_only_files_that_exist():
    named = set(re.findall(r"\b((?:deploy|docs|configs|tests)/[\w./-]+\.(?:ya?ml|md|py|sh|lock))\b", RUNBOOK.read_text()))
    assert "deploy/rayjob.yaml" in named and "deploy/runtime_env.yaml" in named
    missing = sorted(p for p in named if not (REPO / p).exists() and p != "configs/models.lock")  # the lock is written by `models pull`
    assert not missing, missing
