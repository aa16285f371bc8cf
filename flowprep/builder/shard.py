"""Deterministic, balanced partition of the clip list for job-array shards (``--shard K/N``).

Each of the N jobs plans the whole dataset and keeps its part, so the parts must be computed from
the clip ids alone: every job gets the same answer whatever order the release lists its files in.
The assignment depends on the set of ids (all jobs of one build share it: the output folder's
fingerprint includes the source and the selection), and the parts differ by at most one clip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, TypeVar


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)


def _key(clip_id: str) -> str:
    return hashlib.sha1(clip_id.encode("utf-8")).hexdigest()


def shard_of(ids: Sequence[str], n: int) -> dict[str, int]:
    """clip id -> shard index 1..n.

    Ids are ordered by a hash of the id (so the input order does not matter) and dealt round-robin,
    so part sizes differ by at most one.
    """
    order = sorted(ids, key=lambda i: (_key(i), i))
    return {cid: (pos % n) + 1 for pos, cid in enumerate(order)}


def select_shard(jobs: Sequence[T], k: int, n: int) -> list[T]:
    """The jobs of part ``k`` (1-based) of ``n``; jobs need an ``id`` attribute."""
    owner = shard_of([j.id for j in jobs], n)
    return [j for j in jobs if owner[j.id] == k]
