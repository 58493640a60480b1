"""Reading videos with OpenCV: what a clip is (size, rate, length) and its frames as RGB arrays."""

from __future__ import annotations

import hashlib
from typing import Iterator

import cv2
import numpy as np


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def probe_video(path: str) -> tuple[dict, np.ndarray]:
    """The clip's properties and its first frame; ValueError if OpenCV cannot decode it."""
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise ValueError("OpenCV cannot open it")
        ok, frame = capture.read()
        if not ok or frame is None:
            raise ValueError("no decodable frame")
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or 0.0
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        info = {
            "width": int(frame.shape[1]),
            "height": int(frame.shape[0]),
            "fps": round(fps, 3),
            "frames": frames,
            "seconds": round(frames / fps, 3) if fps > 0 else None,
        }
        return info, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def read_frames(path: str, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """The frames at `indices` (sorted), as RGB; frames past the end are skipped."""
    capture = cv2.VideoCapture(path)
    try:
        for index in sorted(set(indices)):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
            if ok and frame is not None:
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
