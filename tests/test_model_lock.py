"""The model lock with local folders standing in for downloaded checkpoints (`models.ref.*`):
`models lock` records them, `models verify` and `run` accept them as they are, and refuse a
corrupted file, a missing file or a missing lock, naming the model, unless --allow-unlocked.
The hub is never reached: `models pull` offline fails naming each model."""

from __future__ import annotations

import json
import os

import pytest

from pipeline.cli.main import main
from pipeline.core import config
from pipeline.core.file_hashes import HashCache
from pipeline.core.model_lock import ModelLockError, check_families, verify_models
from pipeline.core.models import registry

# what `run --task color --profile gpu` loads
COLOR_FAMILIES = ["clip", "controlnet_depth", "dinov2", "florence2", "sam2", "sd3_5", "zoedepth"]


@pytest.fixture(autouse=True)
def own_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def folders(tmp_path):
    """One small stand-in checkpoint folder per family: a config and a weights file (and a
    hidden file that is not part of the model)."""
    made = {}
    for i, family in enumerate(COLOR_FAMILIES):
        folder = tmp_path / "models" / family
        (folder / "sub").mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"family": family}))
        (folder / "sub" / "model.safetensors").write_bytes(bytes([i]) * 4096)
        (folder / ".complete").write_text("built\n")
        made[family] = folder
    return made


def _sets(folders, lock):
    return [f"models.ref.{family}={folder}" for family, folder in folders.items()] + [f"models.lock={lock}"]


def _cfg(folders, lock, *extra):
    return config.load_config("gpu", overrides=[config.parse_set(s) for s in [*_sets(folders, lock), *extra]])


def _refs(families=COLOR_FAMILIES):
    return {family: registry()[family].ref for family in families}


def _lock(folders, lock):
    args = ["models", "lock", "--profile", "gpu", "--lock", str(lock)]
    for item in _sets(folders, lock)[:-1]:
        args += ["--set", item]
    return main(args)


def test_locked_folders_match_and_a_second_check_reads_nothing(folders, tmp_path, capsys):
    lock = tmp_path / "models.lock"
    # the gpu profile also uses models with no folder here: those are named, the rest locked
    assert _lock(folders, lock) == 1
    out = capsys.readouterr().out
    assert "error: flux_fill: no local files" in out and f"locked {len(COLOR_FAMILIES)} model(s)" in out
    data = json.loads(lock.read_text())
    entry = data["models"]["florence2"]
    assert entry["source"] == "local" and set(entry["files"]) == {"config.json", "sub/model.safetensors"}
    assert len(entry["files"]["sub/model.safetensors"]["sha256"]) == 64
    cfg = _cfg(folders, lock)
    assert check_families(cfg, _refs()) == []
    cache = HashCache()
    assert check_families(cfg, _refs(), cache) == [] and cache.hashed_bytes == 0  # size+mtime cache hit
    verify_models(cfg, _refs())  # no error


def test_a_corrupted_and_a_missing_file_are_refused_naming_the_model(folders, tmp_path):
    lock = tmp_path / "models.lock"
    _lock(folders, lock)
    weights = folders["sam2"] / "sub" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF  # same size, one byte flipped
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 1))
    (folders["zoedepth"] / "config.json").unlink()
    problems = check_families(_cfg(folders, lock), _refs())
    assert problems == [
        "sam2: sub/model.safetensors does not match its locked sha256 (changed or corrupted)",
        f"zoedepth: config.json is missing from {folders['zoedepth']}",
    ]
    with pytest.raises(ModelLockError, match="sam2: sub/model.safetensors"):
        verify_models(_cfg(folders, lock), _refs())
    logged = []
    verify_models(_cfg(folders, lock, "models.allow_unlocked=true"), _refs(), log=logged.append)
    assert "unlocked" in logged[0] and "zoedepth" in logged[0]


def test_models_verify_and_list_report_the_lock(folders, tmp_path, capsys):
    lock = tmp_path / "models.lock"
    _lock(folders, lock)
    capsys.readouterr()
    sets = [a for s in _sets(folders, lock) for a in ("--set", s)]
    assert main(["models", "verify", "--profile", "gpu", *sets]) == 1  # flux_fill etc. are not here
    out = capsys.readouterr().out
    assert "flux_fill: not in the model lock" in out and "florence2" not in out
    assert main(["models", "list", "--lock", str(lock)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "locked:local" in lines["florence2"] and "unlocked" in lines["flux_fill"]


def test_run_refuses_unlocked_files_before_anything_starts(folders, tmp_path, capsys):
    out_dir = tmp_path / "run"
    lock = tmp_path / "models.lock"
    args = ["run", "--task", "color", "--profile", "gpu", "--out", str(out_dir), "--limit", "1", "--no-progress"]
    args += [a for s in _sets(folders, lock) for a in ("--set", s)]
    assert main(args) == 2  # no lock at all
    err = capsys.readouterr().err
    assert "no model lock" in err and "florence2" in err and "--allow-unlocked" in err
    assert not out_dir.exists()  # refused before the plan, Ray or any actor
    _lock(folders, lock)
    (folders["controlnet_depth"] / "sub" / "model.safetensors").write_bytes(b"x")  # truncated
    capsys.readouterr()
    assert main(args) == 2
    assert "controlnet_depth: sub/model.safetensors is 1 bytes, the lock says 4096" in capsys.readouterr().err
    assert not out_dir.exists()


def test_pull_without_a_hub_names_each_model_and_writes_no_lock(tmp_path, capsys):
    lock = tmp_path / "models.lock"
    assert main(["models", "pull", "--profile", "gpu", "--lock", str(lock)]) == 1
    out = capsys.readouterr().out
    for family, entry in registry().items():
        assert f"error: cannot download {family} ({entry.ref})" in out
    assert not lock.exists()


def test_pull_keeps_a_pipelines_components_and_skips_other_formats():
    from pipeline.cli.model_pull import wanted_files

    pipeline = ["model_index.json", "sd3.5_large.safetensors", "transformer/config.json",
                "transformer/diffusion_pytorch_model-00001-of-00002.safetensors", "text_encoder/model.fp16.bin", "README.md", "header.png"]
    assert wanted_files(pipeline) == ["model_index.json", "transformer/config.json",
                                      "transformer/diffusion_pytorch_model-00001-of-00002.safetensors", "README.md"]
    single = ["config.json", "model.safetensors", "pytorch_model.bin", ".gitattributes"]
    assert wanted_files(single) == ["config.json", "model.safetensors"]
