"""Settings of the gpu profile that only matter with real weights, each pinned to the usage its
checkpoint documents (the source is named beside each), since random-weight twins run the same
code whatever the numbers."""

import pytest

from pipeline.core import config
from stages.models.factory import make_stage


def test_florence2_generates_as_its_docs_do_on_the_gpu_profile():
    """transformers docs/source/en/model_doc/florence2.md generates with max_new_tokens=1024 and
    num_beams=3; 256 cut busy <OD> and OCR answers mid-box."""
    stage = make_stage("florence2", config.load_config("gpu"), None)
    assert (stage.max_new_tokens, stage.num_beams) == (1024, 3)


def test_minimum_versions_cover_what_the_adapters_use():
    """siglip reads .pooler_output from get_*_features (transformers 5.0, #42564); every loader
    passes dtype= to from_pretrained (diffusers 0.40 is the first that takes it); accelerate is
    what makes diffusers cast on load. The installed versions must meet the floors too."""
    from importlib.metadata import version

    from packaging.requirements import Requirement
    from packaging.version import Version

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    text = (config.CONFIG_DIR.parent / "pyproject.toml").read_text()
    requirements = {r.name: r for r in map(Requirement, tomllib.loads(text)["project"]["dependencies"])}
    floors = {"transformers": "5.0", "diffusers": "0.40", "torch": "2.6", "accelerate": "1.1"}
    for name, floor in floors.items():
        assert Version(floor) in requirements[name].specifier, name
        assert _below(floor) not in requirements[name].specifier, name  # a floor, not just any pin
        assert Version(version(name)) in requirements[name].specifier, name


def _below(floor: str):
    from packaging.version import Version

    major, minor = (int(p) for p in floor.split("."))
    return Version(f"{major}.{minor - 1}" if minor else f"{major - 1}.99")
