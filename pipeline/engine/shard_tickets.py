"""Shards handed to Ray Data while the listing goes on.

A Ray Data dataset needs its inputs' count up front, and a read task's small blocks are merged
until the task ends (Ray Data shapes a task's output to `target_max_block_size`), so shard
numbers cannot simply be streamed through a read. Instead the dataset is a fixed list of
TICKETS: ticket i stands for the shards [2^i - 1, 2^(i+1) - 1). One ticket task at a time waits
until the driver says its shards are planned (or that the listing ended), then emits the pending
ones; a streaming repartition makes each shard a block of its own, as `from_items` does. The
first shard runs as soon as its plan file is written; a shard waits at most until twice as many
shards are listed. Ticket tasks hold no CPU, and the model pools start once, for the whole run.
"""

from __future__ import annotations

import asyncio

import pyarrow as pa

TICKETS = 24  # tickets 0..22 double; the last takes every shard from 2^23 - 1 on


def ticket_range(ticket: int) -> tuple[int, int | None]:
    """The shards [first, end) a ticket stands for; the last ticket's end is open."""
    first = 2**ticket - 1
    return first, None if ticket == TICKETS - 1 else 2 ** (ticket + 1) - 1


class PlannedShards:
    """A Ray actor: how many shards are planned (and their writers told), and whether the
    listing ended. Ticket tasks wait on it."""

    def __init__(self):
        self.planned = 0
        self.done = False
        self.changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self.changed is None:  # made on the actor's event loop
            self.changed = asyncio.Condition()
        return self.changed

    async def publish(self, planned: int, done: bool) -> None:
        # an async actor may run calls out of their order: a late "not done" never undoes "done"
        async with self._condition():
            self.planned, self.done = max(self.planned, planned), self.done or done
            self._condition().notify_all()

    async def wait_for(self, shards: int | None) -> int:
        """Returns the shards planned once at least `shards` are (None: all), or the listing ended."""
        async with self._condition():
            await self._condition().wait_for(lambda: self.done or (shards is not None and self.planned >= shards))
            return self.planned


class _TicketShards:
    """A ticket becomes its pending shards, once they are planned."""

    def __init__(self, planned, committed: frozenset[int]):
        self.planned = planned
        self.committed = committed

    def __call__(self, table: pa.Table) -> pa.Table:
        import ray

        shards = []
        for ticket in table.column("ticket").to_pylist():
            first, end = ticket_range(ticket)
            planned = ray.get(self.planned.wait_for.remote(end))
            last = planned if end is None else min(end, planned)
            shards += [s for s in range(first, last) if s not in self.committed]
        return pa.table({"shard": pa.array(shards, pa.int64())})


def start_planned_shards():
    import ray

    return ray.remote(num_cpus=0)(PlannedShards).remote()


def ticket_dataset(planned, committed: set[int]):
    """`{"shard": n}` rows, one a block, for every planned shard not in `committed`, in shard
    order, as `planned` (a `start_planned_shards` actor) says they are planned."""
    import ray.data
    from ray.data import TaskPoolStrategy

    ds = ray.data.from_items([{"ticket": t} for t in range(TICKETS)], override_num_blocks=TICKETS)
    # one ticket task at a time, holding no CPU: it mostly waits for the listing
    ds = ds.map_batches(_TicketShards(planned, frozenset(committed)), batch_format="pyarrow", batch_size=None,
                        num_cpus=0, compute=TaskPoolStrategy(size=1))
    return ds.repartition(target_num_rows_per_block=1)
