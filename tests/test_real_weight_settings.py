"""Settings of the gpu profile that only matter with real weights, each pinned to the usage its
checkpoint documents (the source is named beside each), since random-weight twins run the same
code whatever the numbers."""

from pipeline.core import config
from stages.models.factory import make_stage


def test_florence2_generates_as_its_docs_do_on_the_gpu_profile():
    """transformers docs/source/en/model_doc/florence2.md generates with max_new_tokens=1024 and
    num_beams=3; 256 cut busy <OD> and OCR answers mid-box."""
    stage = make_stage("florence2", config.load_config("gpu"), None)
    assert (stage.max_new_tokens, stage.num_beams) == (1024, 3)
