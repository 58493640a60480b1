"""Open-vocabulary multi-label tags for a whole image, in the role the Recognize-Anything Model
plays in the seed (RAM ships no installable package). SigLIP scores every tag of a fixed
vocabulary independently with a sigmoid, so several tags can be present at once.

The stage only needs something that follows the `Tagger` protocol; a RAM backend can be added
beside `SiglipTagger` without touching the stage.

Usage checked against transformers' models/siglip/modeling_siglip.py (`get_text_features`
example: `padding="max_length"`, "as that's how the model was trained"; sigmoid of the scaled
logits plus bias, as `SiglipModel.forward` computes them). In transformers 5 `get_*_features`
return an output whose `.pooler_output` is the embedding (hence transformers>=5.0)."""

from __future__ import annotations

import pathlib
from typing import Any, Protocol, Sequence

import numpy as np

from pipeline.core.image_io import decode_image
from pipeline.core.rows import record_stage, update_work
from pipeline.core.stage import ModelStage, ModelUse, Resources, Row
from stages.models.torch_device import load_model, model_info

DEFAULT_VOCABULARY = pathlib.Path(__file__).resolve().parents[2] / "configs" / "tag_vocabulary.txt"
# SigLIP's own zero-shot prompt; its text tower was trained on lowercase captions
DEFAULT_PROMPT = "this is a photo of {}."
TEXT_LENGTH = 64  # SigLIP texts are always padded to 64 tokens, the length it was trained on

Tags = list[tuple[str, float]]


class Tagger(Protocol):
    def tags(self, images: Sequence[np.ndarray]) -> list[Tags]:
        """Per image (uint8 HxWx3), its tags with scores in [0, 1], best first."""

    def describe(self) -> dict[str, Any]:
        """What ran: model reference, revision, dtype."""


def load_vocabulary(path: pathlib.Path | str = DEFAULT_VOCABULARY) -> list[str]:
    words = [line.strip().lower() for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines()]
    words = [w for w in words if w and not w.startswith("#")]
    return list(dict.fromkeys(words))  # drop repeats, keep the file's order


def select_tags(scores: np.ndarray, vocabulary: Sequence[str], threshold: float, max_tags: int) -> list[Tags]:
    """Per row of `scores` (images x vocabulary), the tags at or above `threshold`, best first,
    at most `max_tags`; ties break by vocabulary order so reruns agree."""
    chosen: list[Tags] = []
    for row in np.asarray(scores, dtype=np.float64):
        order = np.argsort(-row, kind="stable")[:max_tags]
        chosen.append([(vocabulary[i], float(row[i])) for i in order if row[i] >= threshold])
    return chosen


class SiglipTagger:
    """SiglipModel + its processor. Text embeddings of the whole vocabulary are computed once
    here; each call then costs one image-tower pass and one matrix product."""

    def __init__(
        self,
        model_ref: str,
        vocabulary: Sequence[str],
        threshold: float,
        max_tags: int,
        prompt: str = DEFAULT_PROMPT,
        revision: str | None = None,
        text_batch_size: int = 128,
    ):
        import torch
        from transformers import AutoProcessor, SiglipModel

        self.model_ref, self.revision = model_ref, revision
        self.vocabulary = list(vocabulary)
        self.threshold, self.max_tags = threshold, max_tags
        self.model, self.processor, self.device, self.dtype = load_model(SiglipModel, AutoProcessor, model_ref, revision)
        with torch.inference_mode():
            chunks = [
                self._embed_texts([prompt.format(w) for w in self.vocabulary[i : i + text_batch_size]])
                for i in range(0, len(self.vocabulary), text_batch_size)
            ]
        self.text_embeds = torch.cat(chunks)
        self.logit_scale = self.model.logit_scale.exp()
        self.logit_bias = self.model.logit_bias

    def _embed_texts(self, texts: list[str]):
        inputs = self.processor(
            text=texts, padding="max_length", max_length=TEXT_LENGTH, truncation=True, return_tensors="pt"
        )
        # SigLIP was trained on padded texts without an attention mask, so none is passed
        pooled = self.model.get_text_features(input_ids=inputs["input_ids"].to(self.device)).pooler_output
        return pooled / pooled.norm(dim=-1, keepdim=True)

    def scores(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        # decoded PNGs are read-only views; torch wants arrays it may write to
        inputs = self.processor(images=[np.array(image) for image in images], return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        with torch.inference_mode():
            pooled = self.model.get_image_features(pixel_values=pixels).pooler_output
            image_embeds = pooled / pooled.norm(dim=-1, keepdim=True)
            logits = image_embeds @ self.text_embeds.T * self.logit_scale + self.logit_bias
            return torch.sigmoid(logits).float().cpu().numpy()

    def tags(self, images: Sequence[np.ndarray]) -> list[Tags]:
        return select_tags(self.scores(images), self.vocabulary, self.threshold, self.max_tags)

    def describe(self) -> dict[str, Any]:
        return model_info(self.model_ref, self.revision, self.model, self.dtype)


class SiglipTagStage(ModelStage):
    """Writes `tags` ([{label, score}], best first) into the row's work state."""

    name = "tags"
    reads = ("source_image",)
    writes = ("work.tags", "provenance")
    model = ModelUse("siglip", "siglip")

    def __init__(
        self,
        model_ref: str,
        vocabulary_path: pathlib.Path | str = DEFAULT_VOCABULARY,
        threshold: float = 0.05,
        max_tags: int = 20,
        prompt: str = DEFAULT_PROMPT,
        revision: str | None = None,
        tasks: tuple[str, ...] | None = None,
        resources: Resources | None = None,
    ):
        self.model_ref, self.revision, self.prompt = model_ref, revision, prompt
        self.vocabulary_path = pathlib.Path(vocabulary_path)
        self.threshold, self.max_tags = threshold, max_tags
        self.tasks = tasks
        self.resources = resources or self.resources
        self.tagger: Tagger | None = None

    @classmethod
    def from_settings(cls, cfg, params, refs, tasks):
        ref, revision = refs["siglip"]
        return cls(ref, threshold=params["threshold"], max_tags=params["max_tags"], revision=revision, tasks=tasks)

    def setup(self) -> None:
        self.tagger = self.load_tagger()

    def load_tagger(self) -> Tagger:
        vocabulary = load_vocabulary(self.vocabulary_path)
        return SiglipTagger(self.model_ref, vocabulary, self.threshold, self.max_tags, self.prompt, self.revision)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        if self.tagger is None:
            self.setup()
        images = [decode_image(row["source_image"]["bytes"]) for row in rows]
        for row, tags in zip(rows, self.tagger.tags(images)):
            update_work(row, tags=[{"label": label, "score": round(score, 4)} for label, score in tags])
            record_stage(row, self.name, threshold=self.threshold, **self.tagger.describe())
        return rows
