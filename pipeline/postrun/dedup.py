"""Near-duplicate detection for the selection phase: perceptual hashes of source images, a
bucket index that finds hashes within a Hamming distance without comparing every pair, and the
grouping of candidates into near-duplicate groups with a deterministic winner."""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import imagehash
import pyarrow.parquet as pq
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
HASH_BITS = 64


def phash(data: bytes) -> str:
    """The 64-bit DCT perceptual hash of an encoded image, as 16 hex digits."""
    with Image.open(io.BytesIO(data)) as img:
        return str(imagehash.phash(img.convert("RGB")))


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


class HashIndex:
    """Finds stored hashes within `distance` bits of a query. Split into distance + 1 bands, two
    hashes that close agree exactly on at least one band (pigeonhole), so only hashes sharing a
    band are compared."""

    def __init__(self, distance: int):
        self.distance = max(0, int(distance))
        bands = min(self.distance + 1, HASH_BITS)
        edges = [round(i * HASH_BITS / bands) for i in range(bands + 1)]
        self.bands = list(zip(edges[:-1], edges[1:]))
        self.buckets: dict[tuple[int, int], list[tuple[str, int]]] = defaultdict(list)

    def _keys(self, value: int) -> Iterator[tuple[int, int]]:
        for i, (lo, hi) in enumerate(self.bands):
            yield i, (value >> lo) & ((1 << (hi - lo)) - 1)

    def add(self, key: str, hex_hash: str) -> None:
        value = int(hex_hash, 16)
        for band in self._keys(value):
            self.buckets[band].append((key, value))

    def near(self, hex_hash: str) -> set[str]:
        value = int(hex_hash, 16)
        found = set()
        for band in self._keys(value):
            for key, other in self.buckets.get(band, ()):
                if (value ^ other).bit_count() <= self.distance:
                    found.add(key)
        return found


def near_duplicate_clusters(hashes: dict[str, str], distance: int) -> dict[str, str]:
    """key -> cluster id (the smallest key in its cluster). Closeness chains: if a is near b and b
    near c, all three share a cluster."""
    parent = {key: key for key in hashes}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    index = HashIndex(distance)
    for key in sorted(hashes):
        for other in index.near(hashes[key]):
            a, b = root(key), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
        index.add(key, hashes[key])
    return {key: root(key) for key in hashes}


def source_key(source_sha256: str | None, image_bytes: bytes | None) -> str:
    """What identifies a source picture: its recorded content hash, else the hash of its bytes."""
    if source_sha256:
        return source_sha256
    return hashlib.sha256(image_bytes or b"").hexdigest()


def source_hashes(files: Iterable[Path], batch_rows: int) -> dict[str, dict[str, str]]:
    """sample_id -> {"source": source key, "phash": hash}. Reads the source image column a batch at
    a time and decodes each distinct source once."""
    by_source: dict[str, str] = {}
    out: dict[str, dict[str, str]] = {}
    for path in files:  # a Path, or a file on the run's store
        with path.open("rb") as handle:
            parquet = pq.ParquetFile(handle, buffer_size=1 << 20)  # streams pages, not whole column chunks
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=["sample_id", "source_sha256", "source_image"]):
                for sid, sha, image in zip(*(batch.column(i).to_pylist() for i in range(3))):
                    data = (image or {}).get("bytes")
                    key = source_key(sha, data)
                    if key not in by_source:
                        by_source[key] = phash(data) if data else "0" * 16
                    out[sid] = {"source": key, "phash": by_source[key]}
    return out


def folder_hashes(folder: Path, batch_rows: int = 64) -> list[str]:
    """Hashes of every image in a folder tree: image files, and the image columns (structs with
    `bytes`) of Parquet files, as benchmark sets are distributed either way."""
    hashes: list[str] = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            hashes.append(phash(path.read_bytes()))
        elif suffix == ".parquet":
            parquet = pq.ParquetFile(path, buffer_size=1 << 20)  # streams pages, not whole column chunks
            columns = [f.name for f in parquet.schema_arrow if _is_image_struct(f.type)]
            if not columns:
                continue
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                for column in batch.columns:
                    hashes += [phash(v["bytes"]) for v in column.to_pylist() if v and v.get("bytes")]
    return hashes


def _is_image_struct(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_struct(arrow_type) and any(arrow_type.field(i).name == "bytes" for i in range(arrow_type.num_fields))


_PUNCTUATION = re.compile(r"[^\w\s]", re.UNICODE)
_ARTICLES = re.compile(r"\b(a|an|the|please)\b")


def normalise_instruction(text: str | None) -> str:
    """Instructions that differ only in case, punctuation, spacing, articles or politeness read
    the same to a model."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _ARTICLES.sub(" ", _PUNCTUATION.sub(" ", text))
    return " ".join(text.split())


@dataclass(frozen=True)
class Candidate:
    sample_id: str
    task: str
    source: str  # source key
    cluster: str  # near-duplicate cluster of the source
    instruction: str  # normalised
    score: float


@dataclass(frozen=True)
class Verdict:
    group: str
    winner: str
    reason: str | None  # None: the row stays


def _best(members: list[Candidate]) -> Candidate:
    return min(members, key=lambda c: (-c.score, c.sample_id))


def dedup(candidates: list[Candidate], by_source: bool, by_instruction: bool, instruction_scope: str = "source") -> dict[str, Verdict]:
    """Groups within a task: near-duplicate sources first (every row of a source other than the
    winning one leaves; the winning source keeps all its distinct edits), then identical
    normalised instructions among the rows left. The winner is the best score, then the
    smallest sample_id. Rows in no group are absent from the result."""
    verdicts: dict[str, Verdict] = {}
    alive = list(candidates)
    if by_source:
        groups: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
        for cand in alive:
            groups[(cand.task, cand.cluster)].append(cand)
        for (task, cluster), members in groups.items():
            if len({m.source for m in members}) < 2:
                continue
            best = _best(members)
            group = f"source:{cluster[:16]}"
            for m in members:
                lost = m.source != best.source
                verdicts[m.sample_id] = Verdict(group, best.sample_id, f"near-duplicate source of {best.sample_id}" if lost else None)
        alive = [c for c in alive if c.sample_id not in verdicts or verdicts[c.sample_id].reason is None]
    if by_instruction:
        groups_i: dict[tuple[str, ...], list[Candidate]] = defaultdict(list)
        for cand in alive:
            if not cand.instruction:
                continue
            key = (cand.task, cand.instruction) if instruction_scope == "task" else (cand.task, cand.cluster, cand.instruction)
            groups_i[key].append(cand)
        for key, members in groups_i.items():
            if len(members) < 2:
                continue
            best = _best(members)
            group = "instruction:" + hashlib.sha256("|".join(key).encode()).hexdigest()[:16]
            for m in members:
                lost = m.sample_id != best.sample_id
                verdicts[m.sample_id] = Verdict(group, best.sample_id, f"near-duplicate instruction of {best.sample_id}" if lost else None)
    return verdicts
