import numpy as np
import pytest
import torch

from pipeline.core import schema
from pipeline.core.rows import provenance, work
from pipeline.engine.stage_runner import run_stage
from stages.models.siglip import (
    DEFAULT_VOCABULARY,
    SiglipTagStage,
    load_vocabulary,
    select_tags,
)
from stages.models.tiny import siglip as tiny_siglip
from stages.vocabulary import OBJECT_ZH
from tests.model_rows import noise_image as _image
from tests.model_rows import pipeline_row


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    ref = str(tiny_siglip.build(tmp_path_factory.mktemp("siglip")))
    stage = SiglipTagStage(ref, threshold=0.0, max_tags=5)
    stage.setup()
    return stage


def _row(rgb, index=0):
    return pipeline_row(rgb, index, "color_alteration", work={"objects": None})


def test_shipped_vocabulary_covers_coco_and_the_sample_labels():
    vocabulary = load_vocabulary()
    assert len(vocabulary) >= 300
    assert len(set(vocabulary)) == len(vocabulary)
    assert all(word == word.lower().strip() for word in vocabulary)
    assert set(OBJECT_ZH) <= set(vocabulary)  # COCO's 80 plus the bundled samples' labels
    assert not any(word.startswith("#") for word in vocabulary)


def test_select_tags_keeps_those_over_the_threshold_best_first():
    scores = np.array([[0.1, 0.9, 0.5, 0.5], [0.0, 0.01, 0.02, 0.03]])
    chosen = select_tags(scores, ["cat", "dog", "cup", "car"], threshold=0.2, max_tags=3)
    assert chosen[0] == [("dog", 0.9), ("cup", 0.5), ("car", 0.5)]  # the tie keeps vocabulary order
    assert chosen[1] == []
    assert [t for t, _ in select_tags(scores, ["cat", "dog", "cup", "car"], 0.0, 2)[0]] == ["dog", "cup"]


def test_vocabulary_embeddings_are_computed_once_at_setup(stage):
    tagger = stage.tagger
    assert tuple(tagger.text_embeds.shape) == (len(load_vocabulary(DEFAULT_VOCABULARY)), 32)
    assert torch.allclose(tagger.text_embeds.norm(dim=-1), torch.ones(len(tagger.vocabulary)), atol=1e-5)


def test_tiny_siglip_tags_rows_of_several_sizes(stage, monkeypatch):
    def no_text_pass(*args, **kwargs):
        raise AssertionError("text embeddings recomputed per batch")

    monkeypatch.setattr(stage.tagger.model, "get_text_features", no_text_pass)
    rows = [_row(_image(64, 64, 0), 0), _row(_image(112, 80, 1), 1), _row(_image(72, 100, 2), 2)]
    out = run_stage(stage, rows)
    assert [r["status"] for r in out] == [schema.PENDING] * 3
    vocabulary = set(stage.tagger.vocabulary)
    for row in out:
        tags = work(row)["tags"]
        assert len(tags) == 5
        assert all(t["label"] in vocabulary and 0.0 <= t["score"] <= 1.0 for t in tags)
        assert [t["score"] for t in tags] == sorted((t["score"] for t in tags), reverse=True)
        info = provenance(row)["stages"]["tags"]
        assert info["model"] == stage.model_ref and info["dtype"] == "float32"
    assert work(out[0])["tags"] != work(out[1])["tags"]  # different images, different scores


def test_scores_match_the_models_own_sigmoid_logits(stage):
    tagger = stage.tagger
    images = [_image(96, 96, 7), _image(64, 112, 8)]
    words = tagger.vocabulary[:6]
    texts = tagger.processor(
        text=[f"this is a photo of {w}." for w in words], padding="max_length", max_length=64, return_tensors="pt"
    )
    pixels = tagger.processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = torch.sigmoid(tagger.model(input_ids=texts["input_ids"], pixel_values=pixels).logits_per_image)
    assert np.allclose(tagger.scores(images)[:, :6], expected.numpy(), atol=1e-5)


def test_threshold_filters_tags(stage, monkeypatch):
    monkeypatch.setattr(stage.tagger, "threshold", 1.01)  # above any sigmoid score
    [row] = stage.process_batch([_row(_image(64, 64, 3))])
    assert work(row)["tags"] == []


def test_the_stage_takes_any_tagger(stage):
    class FixedTagger:
        def tags(self, images):
            return [[("cat", 0.8)] for _ in images]

        def describe(self):
            return {"model": "fixed", "revision": None, "dtype": "none"}

    class FixedTagStage(SiglipTagStage):
        def load_tagger(self):
            return FixedTagger()

    other = FixedTagStage("unused")
    other.setup()
    [row] = other.process_batch([_row(_image(64, 64, 4))])
    assert work(row)["tags"] == [{"label": "cat", "score": 0.8}]
    assert provenance(row)["stages"]["tags"]["model"] == "fixed"
