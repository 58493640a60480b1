"""What the throughput benchmarks share: offline 1024-px inputs with COCO boxes made from the
bundled sample photos, the machine's load and the engine's commit, the CPU and memory of a process tree
(CpuSampler: the driver and every Ray process; the Ray Data operators it sees), a table printer and
the JSON writer.

Imported as `bench.bench_common` (each benchmark puts the repository on sys.path first)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "bench"

# Nothing leaves the machine: set before anything imports Ray or the hub clients.
QUIET = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def quiet_environment() -> None:
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)


# -- inputs -------------------------------------------------------------------------------------


def _sample_photos() -> list[tuple[str, np.ndarray, list[dict[str, Any]], str | None]]:
    """(file name, RGB, objects [{label, bbox}], licence) for each still sample photo."""
    from pipeline.core.inputs import SAMPLES_ANNOTATIONS, samples_dir

    data = json.loads(Path(SAMPLES_ANNOTATIONS).read_text())
    categories = {c["id"]: c["name"] for c in data["categories"]}
    licenses = {lic["id"]: lic.get("name") for lic in data.get("licenses", [])}
    photos = []
    for image in sorted(data["images"], key=lambda im: im["id"]):
        path = samples_dir() / image["file_name"]
        if path.suffix.lower() not in {".png", ".jpg", ".jpeg"} or not path.exists():
            continue  # the clip is rendered elsewhere and is no photo
        rgb = np.asarray(Image.open(path).convert("RGB"))
        objects = [
            {"label": categories.get(a["category_id"], "object"), "bbox": [float(v) for v in a["bbox"]]}
            for a in data["annotations"]
            if a["image_id"] == image["id"]
        ]
        photos.append((image["file_name"], rgb, objects, licenses.get(image.get("license"))))
    return photos


def _variant(rgb: np.ndarray, objects: list[dict[str, Any]], v: int, size: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The v-th deterministic variant of a photo: mirrored on odd v, cropped by a few per cent
    from a corner that depends on v, scaled so the long side is `size` (a few px more or less,
    so decode's resize has work to do on some), a small gain. Boxes follow every step; a box
    that loses more than half its area to the crop is dropped."""
    h, w = rgb.shape[:2]
    boxes = [dict(o, bbox=list(o["bbox"])) for o in objects]
    if v % 2:
        rgb = rgb[:, ::-1]
        for o in boxes:
            x, y, bw, bh = o["bbox"]
            o["bbox"] = [w - x - bw, y, bw, bh]
    fx, fy = 0.03 * (v % 3), 0.03 * ((v // 3) % 3)
    x0, y0 = int(round(w * fx)), int(round(h * fy))
    x1, y1 = w - int(round(w * 0.03 * ((v + 1) % 2))), h
    rgb = rgb[y0:y1, x0:x1]
    kept = []
    for o in boxes:
        x, y, bw, bh = o["bbox"]
        cx0, cy0 = max(x, x0), max(y, y0)
        cx1, cy1 = min(x + bw, x1), min(y + bh, y1)
        if cx1 <= cx0 or cy1 <= cy0 or (cx1 - cx0) * (cy1 - cy0) < 0.5 * bw * bh:
            continue
        kept.append(dict(o, bbox=[cx0 - x0, cy0 - y0, cx1 - cx0, cy1 - cy0]))
    ch, cw = rgb.shape[:2]
    long_side = size + (0, 16, -16, 32)[v % 4]
    scale = long_side / max(ch, cw)
    nw, nh = max(1, int(round(cw * scale))), max(1, int(round(ch * scale)))
    img = Image.fromarray(np.ascontiguousarray(rgb)).resize((nw, nh), Image.Resampling.BICUBIC)
    out = np.asarray(img).astype(np.float32) * (1.0 + 0.02 * ((v % 5) - 2))
    out = np.clip(out, 0, 255).astype(np.uint8)
    for o in kept:
        o["bbox"] = [round(c * scale, 1) for c in o["bbox"]]
    return out, kept


def make_photo_inputs(folder: Path, count: int, size: int = 1024) -> Path:
    """`count` distinct photos of about `size` px on the long side in `folder`, and their COCO
    instances JSON beside it (returned). Deterministic: the same files every time."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = _sample_photos()
    images, annotations, categories, licenses = [], [], {}, {}
    for i in range(count):
        name, rgb, objects, license_name = photos[i % len(photos)]
        v = i // len(photos)
        out, kept = _variant(rgb, objects, v, size)
        file_name = f"{i:03d}_{Path(name).stem}_v{v}.png"
        Image.fromarray(out).save(folder / file_name, compress_level=3)
        lic_id = licenses.setdefault(license_name or "unknown", len(licenses) + 1)
        images.append({"id": i + 1, "file_name": file_name, "width": out.shape[1], "height": out.shape[0], "license": lic_id})
        for o in kept:
            cat = categories.setdefault(o["label"], len(categories) + 1)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cat, "bbox": o["bbox"]})
    coco = {
        "info": {"description": f"{count} variants of the bundled sample photos at about {size} px (bench/bench_common.py)"},
        "licenses": [{"id": i, "name": n} for n, i in licenses.items()],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in categories.items()],
    }
    ann = folder.parent / f"{folder.name}.json"
    ann.write_text(json.dumps(coco, indent=1))
    return ann


def make_tiny_inputs(folder: Path, count: int, side: int = 64) -> Path:
    """`count` small distinct PNGs (for chains whose cost is synthetic)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        rgb = rng.integers(0, 255, size=(side, side, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"{i:05d}.png")
    return folder


# -- the machine ----------------------------------------------------------------------------------


ENGINE_PATHS = ("pipeline/engine", "pipeline/core", "stages/candidates.py", "configs/defaults.yaml")


def engine_revision() -> dict[str, Any]:
    """Which engine was measured: the commit and the engine files that differ from it (read-only git)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = [line[3:] for line in git("status", "--porcelain", "--", *ENGINE_PATHS).splitlines() if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "engine_files_changed_since": dirty}


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "engine": engine_revision(),
        "cpu_count": os.cpu_count(),
        "load_avg_1_5_15": [round(x, 2) for x in load],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def load_note(before: dict[str, Any]) -> str:
    """How busy the machine was when the benchmark started (the 1-minute load average, which
    also holds the tail of whatever ran just before)."""
    one = before["load_avg_1_5_15"][0]
    cores = before["cpu_count"] or 1
    where = f"1-min load {one} on {cores} cores"
    if one < 0.75 * cores:
        return f"low load ({where})"
    if one < cores:
        return f"moderate load ({where})"
    return f"UNDER LOAD: {where} when it started; other work shared the cores"


# -- CPU of a process tree ------------------------------------------------------------------------


class CpuSampler:
    """CPU seconds (user + system) of a process (default: this one) and all its descendants (Ray's
    processes when it started Ray), sampled every `every` s so that processes which end are still
    counted (up to one interval short). Also keeps the names Ray gives its workers
    (`ray::MapWorker(MapBatches(a)->MapBatches(b))`: which stages Ray Data fused into one)."""

    def __init__(self, root_pid: int | None = None, every: float = 0.25):
        import psutil

        self.psutil = psutil
        self.root_pid = root_pid or os.getpid()
        self.every = every
        self.seen: dict[tuple[int, float], float] = {}
        self.roles: dict[tuple[int, float], str] = {}
        self.names: set[str] = set()
        self.max_busy_workers = 0
        self.root_peak_rss_mb = 0.0
        self.root_peak_uss_mb = 0.0  # private memory only: without shared pages (Ray's object store mapped in)
        self.root_memory: list[tuple[float, float, float]] = []  # (time.time(), RSS MB, USS MB)
        self.own = 0.0
        self._last: dict[tuple[int, float], tuple[float, float]] = {}

    @staticmethod
    def _role(proc, root_pid: int, name: str) -> str:
        if proc.pid == root_pid:
            return "driver"
        if name.startswith("ray::") or "default_worker.py" in name:
            return "ray workers"
        if name in ("raylet", "gcs_server"):
            return name
        return "other ray processes"

    def _sample(self) -> None:
        try:
            root = self.psutil.Process(self.root_pid)
            procs = [root, *root.children(recursive=True)]
        except self.psutil.NoSuchProcess:
            return
        try:
            mem = root.memory_full_info()
            self.root_peak_rss_mb = max(self.root_peak_rss_mb, round(mem.rss / 2**20, 1))
            self.root_peak_uss_mb = max(self.root_peak_uss_mb, round(mem.uss / 2**20, 1))
            self.root_memory.append((time.time(), round(mem.rss / 2**20, 1), round(mem.uss / 2**20, 1)))
        except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
            pass
        now = time.perf_counter()
        busy = 0
        live = set()
        for proc in procs:
            try:
                t = proc.cpu_times()
                key = (proc.pid, proc.create_time())
                name = proc.name()
                if name == "python" or name.startswith("python"):
                    cmd = proc.cmdline()
                    name = " ".join(cmd[:2]) if cmd else name
                cpu = t.user + t.system
                live.add(name)
                self.seen[key] = cpu
                self.roles[key] = self._role(proc, self.root_pid, name)
                if name.startswith("ray::"):
                    self.names.add(name)
                    prev = self._last.get(key)
                    if prev and (cpu - prev[1]) / max(1e-6, now - prev[0]) > 0.5:
                        busy += 1
                self._last[key] = (now, cpu)
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied, self.psutil.ZombieProcess):
                pass
        self.max_busy_workers = max(self.max_busy_workers, busy)
        self.live_names = live

    def settle(self, prefix: str = "ray::MapWorker", timeout: float = 30.0) -> float:
        """Keep counting until the run's Ray Data actors (`prefix`) have exited, so a run's
        teardown is its own and not the next one's. Returns the seconds waited."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            self._sample()
            if not any(n.startswith(prefix) for n in getattr(self, "live_names", ())):
                break
            time.sleep(self.every)
        return time.perf_counter() - start

    def _loop(self) -> None:
        start = time.thread_time()
        while not self._stop.wait(self.every):
            self._sample()
        self.own = time.thread_time() - start

    def __enter__(self):
        import threading

        self._stop = threading.Event()
        self._sample()
        self.base = dict(self.seen)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()
        self._sample()

    def used(self) -> float:
        """CPU used since __enter__; the sampler's own thread is taken out when it ran in this process."""
        spent = sum(v - self.base.get(k, 0.0) for k, v in self.seen.items())
        return spent - (self.own if self.root_pid == os.getpid() else 0.0)

    def by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, value in self.seen.items():
            role = self.roles.get(key, "other ray processes")
            out[role] = out.get(role, 0.0) + value - self.base.get(key, 0.0)
        if self.root_pid == os.getpid():
            out["driver"] = out.get("driver", 0.0) - self.own
        return {k: round(v, 2) for k, v in sorted(out.items())}

    def root_peak_between(self, start: float, end: float) -> dict[str, float | None]:
        """The root process's peak RSS and USS (MB) between two time.time() moments."""
        inside = [(r, u) for t, r, u in self.root_memory if start <= t <= end]
        if not inside:
            return {"rss_mb": None, "uss_mb": None}
        return {"rss_mb": max(r for r, _ in inside), "uss_mb": max(u for _, u in inside)}

    def processes(self, role: str = "ray workers") -> int:
        """How many processes of `role` lived during the sampling."""
        return sum(1 for r in self.roles.values() if r == role)

    def fused_operators(self) -> list[str]:
        """Ray Data operators seen as worker names, most fused first, repeats collapsed
        ("MapWorker(MapBatches(apply) x6 -> MapBatches(WriterActor))": six light stages fused into
        the writer's actor)."""
        ops = {
            compact_operator(n[len("ray::") :])
            for n in self.names
            if n.startswith("ray::Map") and not n.endswith(("(", ".__init__", ".submit"))
        }
        return sorted(ops, key=lambda n: (-len(n), n))


def compact_operator(name: str) -> str:
    inner, wrap = name, ""
    if name.startswith("MapWorker(") and name.endswith(")"):
        inner, wrap = name[len("MapWorker(") : -1], "MapWorker"
    parts = inner.split("->")
    out: list[list] = []
    for part in parts:
        if out and out[-1][0] == part:
            out[-1][1] += 1
        else:
            out.append([part, 1])
    text = " -> ".join(p if n == 1 else f"{p} x{n}" for p, n in out)
    return f"{wrap}({text})" if wrap else text


# -- output ---------------------------------------------------------------------------------------


def table(headers: list[str], rows: Iterable[list[Any]]) -> str:
    rows = [[_cell(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path
