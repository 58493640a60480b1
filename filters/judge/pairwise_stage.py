"""Best of N as pipeline stages: the N copies of one edit meet, the pairwise judge ranks them, the
winner goes on and the others become `rejected` (`lost_pairwise`).

Two stages over one shared `BestOfGroups`:
- `PairwiseJudgeStage` (after the gates, before the captioner) holds a group's rows until all N
  are in, then judges the gate-passing ones (`judge.pairwise.rows: candidates` lets rejected ones
  compete too) and lets the winner go on. Rows with no group pass straight through.
- `PairwiseRejoinStage` (after the captioner) gives the held losers the winner's final
  instruction when the winner comes by, and lets them go on: a preference pair needs the
  instruction both targets answer.
In one process both see the same object; on Ray the engine routes a group's rows to one actor of
a small pool (pipeline/engine/group_actors.py), which holds that object. A group's outcome depends
on its own rows only, never on how they were batched or when they arrived."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from filters.judge.backends import JudgeBackend
from filters.judge.pairwise import LOST, PROMPT_HASH, calls_per_group, judge_group
from filters.judge.stage import make_backend, sizing
from filters.viescore import match_source_size
from pipeline.core import schema
from pipeline.core import status as row_status
from pipeline.core.image_io import decode_image
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage, StopRun
from stages.best_of_n import best_of

ROWS = ("ok", "candidates")
# what a loser takes from the winner: the instruction and who wrote it
INSTRUCTION_FIELDS = ("instruction_en", "instruction_zh", "instruction_source", "instruction_register", "instructions")
ALL_STATUSES = (schema.PENDING, *schema.FINAL_STATUSES)


class BestOfGroups:
    """The rows of unfinished groups, and each decided group's winner. Not thread-safe: one
    stage call at a time (an actor runs one call at a time)."""

    def __init__(self, backend: JudgeBackend, rows: str = "ok"):
        if rows not in ROWS:
            raise ValueError(f"judge.pairwise.rows must be one of {', '.join(ROWS)}, not {rows!r}")
        self.backend = backend
        self.statuses = (schema.OK,) if rows == "ok" else schema.CANDIDATE_STATUSES
        self.gathering: dict[str, dict[str, Row]] = {}  # group -> sample_id -> row
        self.waiting: dict[str, dict[str, Row]] = {}  # group -> the losers waiting for their winner
        self.winners: dict[str, str | None] = {}  # decided group -> winner's sample_id (None: no competitor)

    def setup(self) -> None:
        self.backend.setup()

    # -- gather: all N in, then judge --------------------------------------------------------

    def gather(self, rows: list[Row]) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            info = best_of(row)
            if info is None:
                out.append(row)
                continue
            group = info["group"]
            if group in self.winners:  # sent again (a retried task): the decision stands
                out.extend(self._after_decision(group, [row]))
                continue
            members = self.gathering.setdefault(group, {})
            members[row["sample_id"]] = row
            if len(members) >= int(info["n"]):
                out.extend(self._decide(group, list(self.gathering.pop(group).values())))
        return out

    def _decide(self, group: str, rows: list[Row]) -> list[Row]:
        rows.sort(key=lambda r: best_of(r)["seed_index"])
        competitors = [r for r in rows if r.get("status") in self.statuses]
        settings = {**self.backend.describe(), "prompt_hash": PROMPT_HASH, "calls": calls_per_group(len(competitors))}
        records = self._judge(competitors) if len(competitors) > 1 else [_walkover()] * len(competitors)
        winner = next((r["sample_id"] for r, rec in zip(competitors, records) if rec["rank"] == 1), None)
        self.winners[group] = winner
        for row, record in zip(competitors, records):
            _write_pairwise(row, {"group": group, **record, "winner": winner, "competed": True, **settings})
            if row["sample_id"] != winner and row["status"] == schema.OK:
                row_status.move(row, schema.REJECTED, LOST)
        competing = {r["sample_id"] for r in competitors}
        info = {k: settings[k] for k in ("backend", "model", "revision", "prompt_hash") if k in settings}
        for row in rows:
            if row["sample_id"] not in competing:
                _write_pairwise(row, {"group": group, "competed": False, "winner": winner, "wins": None, "rank": None, "comparisons": []})
            # a held row leaves in another call than the one that judged it: its provenance says so here
            record_stage(row, "pairwise_judge", calls=settings["calls"], competitors=len(competitors), **info)
        return self._after_decision(group, rows)

    def _judge(self, competitors: list[Row]) -> list[dict[str, Any]]:
        try:
            return self._ask(competitors)
        except StopRun:
            raise  # a served judge that is down stops the run; this group is redone on resume
        except Exception as exc:  # a picture that does not decode: no winner is made up
            failed = {"wins": 0.0, "comparisons": [], "tie_at_top": True, "error": f"{type(exc).__name__}: {exc}"[:300]}
            return [{**failed, "rank": k + 1} for k in range(len(competitors))]

    def _ask(self, competitors: list[Row]) -> list[dict[str, Any]]:
        source = decode_image(competitors[0]["source_image"]["bytes"])
        targets = [match_source_size(decode_image(r["target_image"]["bytes"]), source) for r in competitors]
        # the lowest seed's instruction: one text for every pair, whichever rows compete
        instruction = next((r.get("instruction_en") for r in competitors if (r.get("instruction_en") or "").strip()), "") or ""
        ids = [r["sample_id"] for r in competitors]
        self.setup()  # idempotent
        return judge_group(self.backend, source, targets, instruction, ids, one_at_a_time=self.backend.uses_model)

    def _after_decision(self, group: str, rows: list[Row]) -> list[Row]:
        """The winner goes on; the other candidates wait for it after the captioner; rows with no
        candidate (and every row of a group nobody won) go on at once."""
        winner = self.winners[group]
        out = []
        for row in rows:
            if winner is not None and row["sample_id"] != winner and row.get("status") in schema.CANDIDATE_STATUSES:
                self.waiting.setdefault(group, {})[row["sample_id"]] = row
            else:
                out.append(row)
        return out

    # -- rejoin: the winner, captioned, releases its group -------------------------------------

    def rejoin(self, rows: list[Row]) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            out.append(row)
            info = best_of(row)
            if info is None or self.winners.get(info["group"]) != row["sample_id"]:
                continue
            for loser in self.waiting.pop(info["group"], {}).values():
                for field in INSTRUCTION_FIELDS:
                    loser[field] = row.get(field)
                out.append(loser)
        return out

    def held(self) -> int:
        return sum(len(m) for m in self.gathering.values()) + sum(len(m) for m in self.waiting.values())


def _walkover() -> dict[str, Any]:
    """The only competitor wins without a judge call."""
    return {"wins": 0.0, "rank": 1, "comparisons": [], "tie_at_top": False}


def _write_pairwise(row: Row, record: dict[str, Any]) -> None:
    info = best_of(row) or {}
    judge = schema.loads(row.get("judge"))
    judge["pairwise"] = {**record, "seed_index": info.get("seed_index"), "n": info.get("n")}
    row["judge"] = schema.dumps(judge)


class PairwiseJudgeStage(Stage):
    """Holds each best-of-N group until its N rows are in, then ranks it (see the module)."""

    name = "pairwise_judge"
    reads = ("status", "sample_id", "edit", "source_image", "target_image", "instruction_en", "judge?")
    writes = ("judge", "status", "reason")
    accepts = ALL_STATUSES  # a group is complete only when its error rows are in too
    group_phase = "gather"  # the engine routes a group's rows to one actor (engine/group_actors.py)

    def __init__(self, groups: BestOfGroups, tasks: tuple[str, ...], resources: Resources | None = None, loads: tuple[str, ...] = ()):
        self.groups, self.tasks, self.loads = groups, tuple(tasks), tuple(loads)
        self.uses_model = bool(groups.backend.uses_model)
        self.resources = resources or Resources(num_cpus=0.25, batch_size=8)
        self.rejoin = PairwiseRejoinStage(groups, self.tasks)

    def setup(self) -> None:
        self.groups.setup()

    def process_batch(self, rows: list[Row]) -> list[Row]:
        return self.groups.gather(rows)


class PairwiseRejoinStage(Stage):
    """The losers held by `PairwiseJudgeStage` take the winner's instruction and go on."""

    name = "pairwise_rejoin"
    reads = ("sample_id", "edit", "instruction_en?", "instruction_zh?", "instruction_source?", "instruction_register?", "instructions?")
    writes = ("instruction_en", "instruction_zh", "instruction_source", "instruction_register", "instructions")
    accepts = ALL_STATUSES
    group_phase = "rejoin"
    resources = Resources(num_cpus=0.25, batch_size=8)

    def __init__(self, groups: BestOfGroups, tasks: tuple[str, ...]):
        self.groups, self.tasks = groups, tuple(tasks)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        return self.groups.rejoin(rows)


# -- from the config ------------------------------------------------------------------------------

PAIRWISE_BACKENDS = ("judge", "qwen")


def make_pairwise_stage(cfg: dict[str, Any], tasks: list[str]) -> PairwiseJudgeStage:
    """The pairwise judge for the tasks drawn several times, from `judge.pairwise` over the
    `judge:` block: its backend (or Qwen2.5-VL in process), one `actors`-sized pool."""
    conf, pairwise = cfg["judge"], cfg["judge"]["pairwise"]
    if pairwise["backend"] not in PAIRWISE_BACKENDS:
        raise ValueError(f"judge.pairwise.backend must be one of {', '.join(PAIRWISE_BACKENDS)}, not {pairwise['backend']!r}")
    if int(pairwise["actors"]) < 1:
        raise ValueError(f"judge.pairwise.actors must be at least 1, not {pairwise['actors']}")
    backend = conf["backend"] if pairwise["backend"] == "judge" else pairwise["backend"]
    if backend == "none":
        raise ValueError(
            f"tasks.{tasks[0]}.seeds > 1 needs a pairwise judge: pass --judge-url and --judge-model, "
            "or set judge.backend (or judge.pairwise.backend) to qwen"
        )
    block = {**conf, "backend": backend, "max_new_tokens": pairwise["max_new_tokens"]}
    for key in ("num_cpus", "num_gpus"):
        if pairwise[key] is not None:
            block[key] = pairwise[key]
    if backend != conf["backend"]:  # the judge's model names a served model, not a checkpoint
        block.update(model=None, revision=None)
    groups = BestOfGroups(make_backend(block, cfg), str(pairwise["rows"]))
    resources, loads = sizing(block, groups.backend.uses_model)
    return PairwiseJudgeStage(groups, tuple(tasks), replace(resources, concurrency=int(pairwise["actors"])), loads)
