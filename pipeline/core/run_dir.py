"""The layout of a run directory, and the shard plan decided before Ray starts. The folder is
local or on a store by URI (`run_store.py`); every file in it is reached by its name relative to
the root, through the run's `RunStore`.

Which shard files count is what the completion records say (`committed_files`): on a store a
shard's files carry an attempt in their names, and a killed attempt leaves files no record names
(`orphan_files`), which a rerun removes."""

from __future__ import annotations

import io as io_mod
import json
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from pipeline.core.plan_layout import file_of, file_shards, first_shard_of
from pipeline.core.run_store import RunStore, StoredFile, atomic_write

__all__ = ["RunDir", "RunStore", "StoredFile", "atomic_write", "shard_name", "plan_shards", "shard_count", "PLAN_FILE_INPUTS",
           "PlanMismatch"]


# inputs per plan file, in whole shards: a million inputs make 252 files, not 62,500 (the first
# files are smaller: plan_layout.py)
PLAN_FILE_INPUTS = 4096


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def plan_shards(plan: dict[str, Any]) -> Iterator[tuple[int, int]]:
    """Each shard of a plan and its count of inputs, derived from the plan's counts: every shard
    but the last holds `shard_size` inputs. A plan.json of an earlier version lists its shards."""
    if "shards" in plan:
        yield from ((s["shard"], s["inputs"]) for s in plan["shards"])
        return
    inputs, size = plan["inputs"], plan["shard_size"]
    for shard in range(shard_count(plan)):
        yield shard, min(size, inputs - shard * size)


def shard_count(plan: dict[str, Any]) -> int:
    if "shards" in plan:  # an earlier version's plan.json
        return len(plan["shards"])
    return plan["shard_count"]


SHARD_FOLDERS = ("candidates", "errors")
PLAN, COMMITS = "plan", "stats/shards"
# written first when planning starts (the run's config hash, tasks, profile): a plan folder with
# it and without plan.json is a plan still being listed, or one whose listing was killed
IDENTITY = f"{PLAN}/identity.json"


class PlanMismatch(ValueError):
    """A relisted input differs from the plan files an unfinished plan already wrote."""


class RunDir:
    """A run folder, local (`root` a Path) or on a store (`root` its URI). The properties give a
    file or folder as the store gives it (a Path on a local folder); the methods read and write
    through the store."""

    def __init__(self, root: str | Path, io: dict[str, Any] | None = None):
        self.store = root.store if isinstance(root, RunDir) else RunStore(root, io)
        self.root = self.store.root

    def __reduce__(self):  # Ray workers get the root and the io settings, never a live connection
        return (RunDir, (self.root, self.store.io))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and str(other.root) == str(self.root)

    def __hash__(self) -> int:
        return hash(str(self.root))

    @property
    def name(self) -> str:
        """The run folder's own name, local or on a store (titles of reports and dataset cards)."""
        return str(self.root).rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:  # messages name the run as the user gave it
        return str(self.root)

    @property
    def plan_dir(self) -> Path | StoredFile:
        return self.store.file(PLAN)

    @property
    def plan_file(self) -> Path | StoredFile:
        return self.store.file(f"{PLAN}/plan.json")

    @property
    def candidates(self) -> Path | StoredFile:
        return self.store.file("candidates")

    @property
    def errors(self) -> Path | StoredFile:
        return self.store.file("errors")

    @property
    def stats(self) -> Path | StoredFile:
        return self.store.file("stats")

    @property
    def commits(self) -> Path | StoredFile:
        return self.store.file(COMMITS)

    @property
    def config_file(self) -> Path | StoredFile:
        return self.store.file("config.yaml")

    @property
    def manifest_file(self) -> Path | StoredFile:
        return self.store.file("manifest.json")

    def shard_inputs(self, shard: int) -> Path | StoredFile:
        """Where a plan from before the files of whole shards kept a shard's inputs."""
        return self.store.file(f"{PLAN}/{shard_name(shard)}.jsonl")

    def commit_record(self, shard: int) -> Path | StoredFile:
        return self.store.file(commit_record_name(shard))

    def is_committed(self, shard: int) -> bool:
        return self.store.exists(commit_record_name(shard))

    def has_plan(self) -> bool:
        return self.store.exists(f"{PLAN}/plan.json")

    def plan_identity(self) -> dict[str, Any] | None:
        """What an unfinished plan was started with (identity.json), or None."""
        if not self.store.exists(IDENTITY):
            return None
        return json.loads(self.store.read_text(IDENTITY))

    def plan_started(self) -> bool:
        """Planning began here: a whole plan, or one still being listed."""
        return self.store.exists(IDENTITY) or self.has_plan()

    def listed_so_far(self) -> int:
        """Inputs an unfinished plan has written: every plan file but the last is full."""
        names = sorted(self.store.list(PLAN, "inputs-*.jsonl"))
        if not names or not self.store.exists(f"{PLAN}/layout.json"):
            return 0
        layout = json.loads(self.store.read_text(f"{PLAN}/layout.json"))
        last = self.store.read_bytes(names[-1]).count(b"\n")
        return first_shard_of(layout, len(names) - 1) * layout["shard_size"] + last

    shards = staticmethod(plan_shards)  # run.shards(plan): (shard, inputs) of each of the plan's shards
    shard_count = staticmethod(shard_count)

    def read_plan(self) -> dict[str, Any] | None:
        if not self.has_plan():
            return None
        return json.loads(self.store.read_text(f"{PLAN}/plan.json"))

    @property
    def plan_layout_file(self) -> Path | StoredFile:
        return self.store.file(f"{PLAN}/layout.json")

    def inputs_file(self, number: int) -> Path | StoredFile:
        return self.store.file(inputs_file_name(number))

    def write_plan(
        self,
        records: Iterable[dict[str, Any]],
        shard_size: int,
        meta: dict[str, Any],
        on_file: Callable[[int], None] | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Number the records and write them as they come, in files of whole shards (about
        PLAN_FILE_INPUTS inputs a file, the first ones smaller: `plan_layout.py`): `records` may
        be a stream of millions, and only one file's worth is held at a time. identity.json and
        layout.json come first, so a shard is readable as soon as its file is written:
        `on_file(inputs written so far)` follows each file, and the run may start those shards
        while the listing goes on.

        `resume` continues an unfinished plan (identity.json, no plan.json): the input is listed
        again and each file must come out byte for byte as written before (PlanMismatch if not),
        since shards of it may be committed already."""
        per_file = max(1, PLAN_FILE_INPUTS // shard_size)
        layout = {"shard_size": shard_size, "shards_per_file": per_file, "ramp": True}
        before = sorted(self.store.list(PLAN, "inputs-*.jsonl")) if resume else []
        if resume:
            if self.store.exists(f"{PLAN}/layout.json") and json.loads(self.store.read_text(f"{PLAN}/layout.json")) != layout:
                raise PlanMismatch(f"the input changed since {self.root} was planned (its shard layout differs)")
        else:
            for stale in [*self.store.list(PLAN, "inputs-*.jsonl"), *self.store.list(PLAN, "shard-*.jsonl")]:  # an interrupted plan's
                self.store.remove(stale)
            self.store.write(IDENTITY, json.dumps(meta, indent=1).encode())
        self.store.write(f"{PLAN}/layout.json", json.dumps(layout).encode())
        lines: list[str] = []
        index = files = 0
        for rec in records:
            lines.append(json.dumps({**rec, "index": index}, ensure_ascii=False) + "\n")
            index += 1
            if len(lines) == file_shards(layout, files) * shard_size:
                self._write_inputs(files, lines, resume)
                files, lines = files + 1, []
                if on_file:
                    on_file(index)
        if lines:
            self._write_inputs(files, lines, resume)
            files += 1
            if on_file:
                on_file(index)
        if len(before) > files:
            raise PlanMismatch(f"the input changed since {self.root} was planned: it now lists {index} inputs, fewer than "
                               f"its plan files hold ({before[files]} is beyond the end)")
        # the counts, not a list of shards (62,500 entries for a million inputs): `plan_shards` derives it
        plan = {**meta, "inputs": index, **layout, "shard_count": -(-index // shard_size)}
        # written last: a plan folder without plan.json is an unfinished plan
        self.store.write(f"{PLAN}/plan.json", json.dumps(plan, indent=1).encode())
        return plan

    def _write_inputs(self, number: int, lines: list[str], resume: bool) -> None:
        # each file is written whole (its shards may run at once); plan.json says the plan is whole
        name, data = inputs_file_name(number), "".join(lines).encode("utf-8")
        if resume and self.store.exists(name):
            if self.store.read_bytes(name) != data:  # shards of it may be committed: never mix two inputs
                raise PlanMismatch(f"the input changed since {self.root} was planned: {name} lists other inputs now; "
                                   "rerun with the input it was planned with, or choose another --out")
            return
        self.store.write(name, data)

    def read_shard_inputs(self, shard: int) -> Iterator[dict[str, Any]]:
        """A shard's input records: its lines of the plan file that holds it (a plan from before
        the files of whole shards has one file per shard)."""
        if not self.store.exists(f"{PLAN}/layout.json"):
            with io_mod.TextIOWrapper(self.store.open(f"{PLAN}/{shard_name(shard)}.jsonl"), encoding="utf-8") as handle:
                yield from (json.loads(line) for line in handle)
            return
        layout = json.loads(self.store.read_text(f"{PLAN}/layout.json"))
        number, place = file_of(layout, shard)
        size = layout["shard_size"]
        skip = place * size
        with io_mod.TextIOWrapper(self.store.open(inputs_file_name(number)), encoding="utf-8") as handle:
            yield from (json.loads(line) for line in islice(handle, skip, skip + size))

    def commit_record_names(self) -> list[str]:
        return self.store.list(COMMITS, "shard-*.json")

    def pending_shards(self, plan: dict[str, Any]) -> dict[int, int]:
        """The plan's shards without a completion record, and their counts of inputs."""
        committed = self.committed_shards()
        return {shard: inputs for shard, inputs in plan_shards(plan) if shard not in committed}

    def commit_records(self) -> list[dict[str, Any]]:
        return [json.loads(data) for data in self.store.read_many(self.commit_record_names())]

    def committed_shards(self) -> set[int]:
        """The shards with a completion record, from one listing (not a request per shard)."""
        return {int(rel.rsplit("/", 1)[-1].split(".")[0].split("-")[1]) for rel in self.commit_record_names()}

    def committed_files(self, folder: str, records: list[dict[str, Any]] | None = None) -> list[str]:
        """The shard files of `folder` (candidates or errors) that count, as relative names in
        shard order: those the completion records name. A folder without a plan (whole or still
        being listed) is not one the engine wrote (shards put together by hand or by another
        tool): its shard files are read as they are."""
        if records is None:
            if not self.plan_started():
                return self.store.list(folder, "shard-*.parquet")
            records = self.commit_records()
        named = [f["path"] for rec in sorted(records, key=lambda r: r["shard"]) for f in rec.get("files", [])]
        return [rel for rel in named if rel.startswith(folder + "/")]

    def orphan_files(self) -> list[str]:
        """Files in the shard folders that no completion record names: an attempt killed before
        its record, or a temporary file of one."""
        named = {f["path"] for rec in self.commit_records() for f in rec.get("files", [])}
        return [rel for folder in SHARD_FOLDERS for rel in self.store.list(folder) if rel not in named]


def commit_record_name(shard: int) -> str:
    return f"{COMMITS}/{shard_name(shard)}.json"


def inputs_file_name(number: int) -> str:
    return f"{PLAN}/inputs-{number:05d}.jsonl"
