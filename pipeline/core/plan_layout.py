"""Which plan file holds a shard (`plan/layout.json`).

Plan files hold whole shards. The first files are small and double, 1, 2, 4, ... shards, up to
`shards_per_file` (about 4096 inputs), so the first shards can run as soon as they are listed
while a long listing goes on; every later file holds `shards_per_file`. A layout without `ramp`
(plans of earlier versions) has `shards_per_file` in every file."""

from __future__ import annotations

from typing import Any


def file_shards(layout: dict[str, Any], number: int) -> int:
    """How many shards plan file `number` holds (the last file of a plan may hold fewer)."""
    per_file = layout["shards_per_file"]
    return 2**number if layout.get("ramp") and number < _ramp_files(per_file) else per_file


def first_shard_of(layout: dict[str, Any], number: int) -> int:
    per_file = layout["shards_per_file"]
    if not layout.get("ramp"):
        return number * per_file
    ramp = min(number, _ramp_files(per_file))
    return sum(min(2**n, per_file) for n in range(ramp)) + (number - ramp) * per_file


def file_of(layout: dict[str, Any], shard: int) -> tuple[int, int]:
    """(plan file, the shard's place in it)."""
    per_file = layout["shards_per_file"]
    if not layout.get("ramp"):
        return divmod(shard, per_file)
    number = first = 0
    while number < _ramp_files(per_file):
        size = min(2**number, per_file)
        if shard < first + size:
            return number, shard - first
        number, first = number + 1, first + size
    more, place = divmod(shard - first, per_file)
    return number + more, place


def _ramp_files(per_file: int) -> int:
    """The files before the first full one: 1, 2, 4, ... shards while below `per_file`."""
    return (per_file - 1).bit_length()
