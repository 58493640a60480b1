"""Inputs in the layouts other tools write, made small for tests: img2dataset's WebDataset
shards (with the damage the pipeline must survive) and a Hugging Face style Parquet dataset."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

HF_IMAGE_FEATURES = {"huggingface": json.dumps({"info": {"features": {"image": {"_type": "Image"}}}})}


def jpeg(seed: int, size: tuple[int, int] = (96, 80)) -> bytes:
    """A photo-like picture: a smooth gradient with a bright square, different per seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.uniform(40, 200, 3)
    img = base + 40 * np.stack([xx / w, yy / h, (xx + yy) / (w + h)], axis=2)
    x0, y0 = w // 3, h // 3
    img[y0 : y0 + h // 3, x0 : x0 + w // 3] = rng.uniform(150, 255, 3)
    buf = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


# the damage a shard may carry, by sample number
CORRUPT, NO_IMAGE, BROKEN_JSON = 1, 3, 4


def img2dataset_tar(samples: int = 6, damaged: bool = True) -> bytes:
    """A shard as img2dataset writes it: per key `.jpg`, `.txt` (caption) and `.json` (url,
    caption, key, status, licence). With `damaged`: sample CORRUPT's jpg is not a JPEG,
    NO_IMAGE has no jpg, BROKEN_JSON's json does not parse."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(samples):
            key = f"{i:09d}"
            if not (damaged and i == NO_IMAGE):
                _add(tar, f"{key}.jpg", b"\xff\xd8\xff\xe0 not really a jpeg" if damaged and i == CORRUPT else jpeg(i))
            _add(tar, f"{key}.txt", f"a photo number {i}".encode())
            meta = {"url": f"https://example.org/img/{i}.jpg", "caption": f"a photo number {i}", "key": key, "status": "success",
                    "error_message": None, "width": 96, "height": 80, "license": "CC-BY-4.0"}
            _add(tar, f"{key}.json", b'{"url": "https://example.org/' if damaged and i == BROKEN_JSON else json.dumps(meta).encode())
    return buf.getvalue()


def img2dataset_meta(samples: int = 6) -> bytes:
    """The `.parquet` img2dataset writes beside each tar: metadata, no image column."""
    table = pa.table({"key": [f"{i:09d}" for i in range(samples)], "url": [f"https://example.org/img/{i}.jpg" for i in range(samples)],
                      "status": ["success"] * samples})
    return _parquet_bytes(table)


def hf_parquet(rows: int, first_seed: int = 100) -> bytes:
    """A Parquet shard as the hub stores image datasets: `image` struct of bytes and path, a
    caption, a licence, and the features metadata that makes `datasets` decode it."""
    images = [{"bytes": jpeg(first_seed + i), "path": f"img_{first_seed + i}.jpg"} for i in range(rows)]
    table = pa.table({"image": images, "text": [f"hub caption {first_seed + i}" for i in range(rows)],
                      "license": ["CC0-1.0"] * rows})
    return _parquet_bytes(table.replace_schema_metadata(HF_IMAGE_FEATURES), row_group_size=2)


def _parquet_bytes(table: pa.Table, **kw) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()
