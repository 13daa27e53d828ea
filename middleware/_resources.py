"""Ordering by resource: which calls of a batch must not overlap because one writes what the
other reads or writes (``@tool(reads=..., writes=...)``), and in which order they run.

Conflicting calls run in *rank* order: batch order, except that a call always comes after the
calls it depends on (a topological order of the data and ``depends_on`` edges that takes the
lowest batch index first). Ordering by rank can therefore never close a cycle with those edges.
A call whose keys depend on a reference is known only once it is bound; until then it counts
as conflicting with every call that declares keys, so nothing overtakes it wrongly.

``ResourceGate`` is a pure structure, like the scheduler: the run loop tells it what became
known and asks whether a call may start; it never awaits.
"""

from __future__ import annotations

import bisect
import heapq
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolweave.telemetry._values import safe_type_name

from ._tools import VALIDATION_ERRORS, Tool

if TYPE_CHECKING:
    from ._planner import Prepared

__all__ = [
    "NOT_YET",
    "UNKNOWN",
    "Keys",
    "ResourceGate",
    "call_keys",
    "conflict",
    "levels_over",
    "plan_orderings",
    "ranks",
]

logger = logging.getLogger("toolweave")

_LINKS = 64  # calls named as "ordered after" one call, at most (the nearest ones)


@dataclass(frozen=True, slots=True)
class Keys:
    """What one call reads and writes; ``every``: its key function failed, so it conflicts
    with every call that declares keys."""

    reads: frozenset[str]
    writes: frozenset[str]
    every: bool = False


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
"""Keys that depend on arguments not resolved yet."""

_EVERY = Keys(frozenset(), frozenset(), every=True)


def conflict(a: Keys, b: Keys) -> bool:
    """Whether two calls with these keys must not overlap."""
    if a.every or b.every:
        return True
    return not (a.writes.isdisjoint(b.writes) and a.writes.isdisjoint(b.reads)) or not (
        b.writes.isdisjoint(a.reads)
    )


def call_keys(tool: Tool, values: dict[str, Any], call_id: str) -> Keys | None:
    """The keys of a call of ``tool`` with validated ``values``; None when the tool declares
    none. A key function that raises or returns something other than keys makes the call
    conflict with every call that declares keys (logged without the arguments)."""
    if not tool.declares_resources:
        return None
    try:
        return Keys(_evaluate(tool.reads, values), _evaluate(tool.writes, values))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a key function's failure is its call's, never the batch's
        said = str(exc) if isinstance(exc, _NotKeys) else ""  # type names only, no values
        logger.warning(
            "toolweave: call %r (%s): its reads/writes function failed (%s); the call runs "
            "apart from every call that declares resources. A key function returns a string, "
            "a list of strings, or None (no key)",
            call_id,
            tool.name,
            said or safe_type_name(exc),
        )
        return _EVERY


class _NotKeys(TypeError):
    """A key function returned something other than keys."""


def _evaluate(spec: Any, values: dict[str, Any]) -> frozenset[str]:
    if spec is None:
        return frozenset()
    if isinstance(spec, frozenset):
        return spec
    found = spec(dict(values))
    if found is None:  # `lambda a: a.get("path")` with no path: no key
        return frozenset()
    if isinstance(found, str):
        return frozenset((str.__str__(found),))
    if isinstance(found, bytes | bytearray) or not isinstance(found, Iterable):
        raise _NotKeys(f"it returned {safe_type_name(found)}")
    keys = list(found)
    odd = [k for k in keys if not isinstance(k, str)]
    if odd:
        raise _NotKeys(f"it returned a key of type {safe_type_name(odd[0])}")
    # Plain str copies: a str subclass could raise later, inside the run loop, when compared.
    return frozenset(map(str.__str__, keys))


NOT_YET: Any = object()
"""``Prepared.keys`` before ``static_keys`` looked at the call."""


def static_keys(p: Prepared) -> Keys | None:
    """A call's keys as far as they are known before it runs: fixed keys, or keys from its own
    arguments when they hold no reference; ``UNKNOWN`` otherwise. None for a call that will
    not run (a planning error) or whose tool declares nothing. Kept on the call, so the plan
    and the run ask its key function once."""
    keys = p.keys
    if keys is NOT_YET:
        keys = p.keys = _static_keys(p)
    return keys  # type: ignore[no-any-return]


def _static_keys(p: Prepared) -> Keys | None:
    tool = p.tool
    if tool is None or p.error is not None or not tool.declares_resources:
        return None
    fixed = (tool.reads is None or isinstance(tool.reads, frozenset)) and (
        tool.writes is None or isinstance(tool.writes, frozenset)
    )
    if fixed:
        return call_keys(tool, {}, p.call.id)
    if p.has_references:
        return UNKNOWN  # type: ignore[no-any-return]
    try:
        values = tool.validate_arguments(p.arguments)
    except VALIDATION_ERRORS:
        return None  # it fails when bound, without running
    except Exception:
        return None
    return call_keys(tool, values, p.call.id)


def ranks(deps: list[list[int]]) -> list[int]:
    """Each call's rank: its position in the topological order of ``deps`` that always takes
    the lowest batch index ready. Calls on or behind a cycle (they never run) come last."""
    n = len(deps)
    if all(d < i for i, ds in enumerate(deps) for d in ds):
        return list(range(n))  # the usual batch: every edge points back
    missing = [len(ds) for ds in deps]
    succ: list[list[int]] = [[] for _ in range(n)]
    for i, ds in enumerate(deps):
        for d in ds:
            succ[d].append(i)
    ready = [i for i in range(n) if not missing[i]]
    heapq.heapify(ready)
    rank = [-1] * n
    position = 0
    while ready:
        i = heapq.heappop(ready)
        rank[i] = position
        position += 1
        for s in succ[i]:
            missing[s] -= 1
            if not missing[s]:
                heapq.heappush(ready, s)
    for i in range(n):
        if rank[i] < 0:
            rank[i] = position
            position += 1
    return rank


class _Line:
    """Calls sorted by rank, with a cursor past the front ones that no longer count."""

    __slots__ = ("cursor", "items")

    def __init__(self) -> None:
        self.items: list[tuple[int, int]] = []  # (rank, index)
        self.cursor = 0

    def insert(self, rank: int, index: int) -> None:
        items, item = self.items, (rank, index)
        if not items or items[-1] < item:  # calls are mostly placed in rank order
            items.append(item)
            return
        at = bisect.bisect_left(items, item)
        items.insert(at, item)
        if at < self.cursor:
            self.cursor = at

    def first(self, gone: Callable[[int], bool]) -> tuple[int, int] | None:
        """The lowest-ranked call that still counts, as (rank, index)."""
        items, at = self.items, self.cursor
        while at < len(items) and gone(items[at][1]):
            at += 1
        self.cursor = at
        return items[at] if at < len(items) else None


class ResourceGate:
    """Which calls of one batch may start now as far as resources go.

    ``keys[i]`` is a ``Keys``, ``UNKNOWN`` until the call is bound, or None (no keys: never
    held back). ``final(i)`` tells whether call ``i`` has ended (or will never run)."""

    def __init__(self, prepared: list[Prepared], final: Callable[[int], bool]) -> None:
        self._final = final
        self.keys: list[Keys | None] = [static_keys(p) for p in prepared]
        self._rank: list[int | None] = list(ranks([p.deps for p in prepared]))
        self._unranked: set[int] = set()
        self._parked: set[int] = set()
        self._index()

    @property
    def active(self) -> bool:
        """Whether any call of the batch declares keys."""
        return any(k is not None for k in self.keys)

    def _index(self) -> None:
        self._users: dict[str, _Line] = {}
        self._writers: dict[str, _Line] = {}
        self._every = _Line()
        self._unknown = _Line()
        self._keyed = _Line()
        self._heavy = _Line()
        for i, keys in enumerate(self.keys):
            if keys is not None:
                self._place(i, keys)

    def _place(self, i: int, keys: Keys) -> None:
        rank = self._rank[i]
        if rank is None:
            self._unranked.add(i)
            return
        self._keyed.insert(rank, i)
        if keys is UNKNOWN:
            self._unknown.insert(rank, i)
            return
        if keys.every:
            self._every.insert(rank, i)
        if _heavy(keys):  # checked against call by call, with set operations
            self._heavy.insert(rank, i)
            return
        for k in keys.writes:
            self._line(self._writers, k).insert(rank, i)
        for k in keys.reads | keys.writes:
            self._line(self._users, k).insert(rank, i)

    @staticmethod
    def _line(lines: dict[str, _Line], key: str) -> _Line:
        line = lines.get(key)
        if line is None:
            line = lines[key] = _Line()
        return line

    def known(self, i: int, keys: Keys | None) -> None:
        """Call ``i`` was bound: its keys are known now."""
        if self.keys[i] is not UNKNOWN:
            return
        self.keys[i] = keys
        if keys is not None and self._rank[i] is not None:
            self._place(i, keys)

    def blocked(self, i: int) -> bool:
        """Whether call ``i`` (bound, its keys known) must wait for an earlier conflicting
        call to end."""
        return self.blocker(i) is not None

    def blocker(self, i: int) -> int | None:
        """A call that keeps call ``i`` (bound, its keys known) from starting: ranked before
        it, not ended, and conflicting with it (or perhaps: keys not known yet); None when
        ``i`` may start."""
        keys = self.keys[i]
        if keys is None:
            return None
        final = self._final
        rank = self._rank[i]
        assert rank is not None
        assert keys is not UNKNOWN
        for j in self._unranked:  # a streamed batch before it closed: nothing overtakes them
            if not final(j) and j != i:
                other = self.keys[j]
                if other is UNKNOWN or (other is not None and conflict(keys, other)):
                    return j
        lines = [self._every, self._unknown] if not keys.every else [self._keyed]
        for line in lines:
            gone = final if line is not self._unknown else self._settled
            found = line.first(gone)
            if found is not None and found[0] < rank:
                return found[1]
        if keys.every:
            return None
        if _heavy(keys):
            return self._scan(self._keyed, i, rank)
        for k in keys.writes:
            found = self._users[k].first(final)
            if found is not None and found[0] < rank:
                return found[1]
        for k in keys.reads:
            writers = self._writers.get(k)
            found = None if writers is None else writers.first(final)
            if found is not None and found[0] < rank:
                return found[1]
        return self._scan(self._heavy, i, rank) if self._heavy.items else None

    def _scan(self, line: _Line, i: int, rank: int) -> int | None:
        """The first call of ``line`` ranked below ``rank``, not ended, conflicting with
        ``i``: one set operation per call rather than one lookup per key."""
        if line.first(self._final) is None:
            return None
        keys = self.keys[i]
        assert isinstance(keys, Keys)
        final = self._final
        items = line.items
        for k in range(line.cursor, len(items)):
            r, j = items[k]
            if r >= rank:
                break
            other = self.keys[j]
            if final(j) or other is None:
                continue
            if other is UNKNOWN or conflict(keys, other):
                return j
        return None

    def _settled(self, j: int) -> bool:
        """Whether an entry of the unknown-keys line no longer counts."""
        return self._final(j) or self.keys[j] is not UNKNOWN

    def conflicting(self, a: int, b: int) -> bool:
        """Whether calls ``a`` and ``b`` conflict as far as is known (unknown keys might)."""
        ka, kb = self.keys[a], self.keys[b]
        if ka is None or kb is None:
            return False
        if ka is UNKNOWN or kb is UNKNOWN:
            return True
        return conflict(ka, kb)

    def rank(self, i: int) -> int:
        """Call ``i``'s rank (calls not ranked yet, in an open stream, come last)."""
        rank = self._rank[i]
        return len(self._rank) + i if rank is None else rank

    def mergeable(self, first: int, later: int) -> bool:
        """Whether call ``later`` may take the result of the identical call ``first``: it is
        ranked before ``later``, and no call ranked between them conflicts with ``later``
        (or might: keys not known yet)."""
        low, high = self._rank[first], self._rank[later]
        if low is None or high is None or low >= high:
            return False
        keys = self.keys[later]
        if keys is None:
            return True
        if keys is UNKNOWN:
            return False
        items = self._keyed.items
        start = bisect.bisect_right(items, (low, len(self.keys)))
        end = bisect.bisect_left(items, (high, -1))
        for _, j in items[start:end]:
            other = self.keys[j]
            if other is UNKNOWN or (other is not None and conflict(keys, other)):
                return False
        return True

    def after(self, i: int) -> list[int]:
        """The calls ``i`` is ordered after by resource, nearest first: for each key it writes,
        the readers since the last writer and that writer; for each key it reads, the last
        writer; and the last call whose key function failed (or, for such a call, every call
        with keys since the previous one). Up to 64; calls without known keys are left out."""
        keys, rank = self.keys[i], self._rank[i]
        if keys is None or keys is UNKNOWN or rank is None:
            return []
        found: dict[int, None] = {}
        below = bisect.bisect_left(self._keyed.items, (rank, -1))
        if not keys.every and (self._heavy.items or len(keys.reads) + len(keys.writes) > below):
            return self._after_by_calls(keys, below)  # many keys, few calls before it
        if keys.every:
            for _r, j in _before_rank(self._keyed, rank):
                other = self.keys[j]
                if other is not None and other is not UNKNOWN:
                    found[j] = None
                    if other.every:
                        break
        else:
            for k in keys.writes:
                for _r, j in _before_rank(self._users[k], rank):
                    found[j] = None
                    if k in self._keys_of(j).writes:
                        break
            for k in keys.reads - keys.writes:
                line = self._writers.get(k)
                if line is not None:
                    for _r, j in _before_rank(line, rank):
                        found[j] = None
                        break
            for _r, j in _before_rank(self._every, rank):
                found[j] = None
                break
        ordered = sorted(found, key=lambda j: -(self._rank[j] or 0))
        return ordered[:_LINKS]

    def _after_by_calls(self, keys: Keys, below: int) -> list[int]:
        """``after()`` found by walking the keyed calls ranked below, nearest first, with set
        operations: for a call with more keys than there are calls before it."""
        writes = set(keys.writes)  # keys still collecting readers, until their last writer
        reads = set(keys.reads - keys.writes)  # keys still looking for their last writer
        every = True  # still looking for the last call whose key function failed
        found: list[int] = []
        items = self._keyed.items
        for k in range(below - 1, -1, -1):
            j = items[k][1]
            other = self.keys[j]
            if other is None or other is UNKNOWN:
                continue
            if other.every:
                if every:
                    found.append(j)
                    every = False
                continue
            hit = False
            if writes and not (writes.isdisjoint(other.writes) and writes.isdisjoint(other.reads)):
                hit = True
                writes -= other.writes
            if reads and not reads.isdisjoint(other.writes):
                hit = True
                reads -= other.writes
            if hit:
                found.append(j)
                if len(found) >= _LINKS:
                    break
            if not writes and not reads and not every:
                break
        return found

    def _keys_of(self, j: int) -> Keys:
        keys = self.keys[j]
        assert keys is not None
        assert keys is not UNKNOWN
        return keys

    # ------------------------------------------------------------------ streamed batches

    def add(self, p: Prepared, *, parked: bool) -> None:
        """A streamed call arrived. It is ranked at once when its place is certain: it refers
        to no call still to come, nor depends on one that does."""
        tool = p.tool
        if parked and tool is not None and tool.declares_resources:
            keys = UNKNOWN  # it names a call still to come: known once the stream closed
            self._parked.add(p.index)
        else:
            keys = static_keys(p)
        self.keys.append(keys)
        clean = not parked and all(self._rank[d] is not None for d in p.deps if d < len(self._rank))
        self._rank.append(len(self._rank) if clean else None)
        if keys is not None:
            self._place(p.index, keys)

    def close(self, whole: list[Prepared]) -> None:
        """The stream closed: rank every call against the whole batch."""
        for i in self._parked:
            if self.keys[i] is UNKNOWN:  # planned against the whole batch now
                self.keys[i] = static_keys(whole[i])
        self._parked = set()
        if not self._unranked and all(r is not None for r in self._rank):
            return
        self._rank = list(ranks([p.deps for p in whole]))
        self._unranked = set()
        self._index()


_HEAVY = 64
"""A call with more keys than this is not indexed key by key (a model sending 10,000 paths
would cost 10,000 entries per call): calls are compared with it one set operation each."""


def _heavy(keys: Keys) -> bool:
    return len(keys.reads) + len(keys.writes) > _HEAVY


def _before_rank(line: _Line, rank: int) -> Iterable[tuple[int, int]]:
    """The line's calls ranked below ``rank``, nearest first."""
    items = line.items
    at = bisect.bisect_left(items, (rank, -1))
    for k in range(at - 1, -1, -1):
        yield items[k]


def plan_orderings(prepared: list[Prepared]) -> dict[int, list[int]]:
    """Call index -> the calls it is ordered after by resource, as far as keys are known
    before the batch runs (edges a data or ``depends_on`` edge already gives are left out)."""
    gate = ResourceGate(prepared, lambda i: False)
    orderings: dict[int, list[int]] = {}
    for p in prepared:
        after = gate.after(p.index)
        if after:
            deps = set(p.deps)
            after = [j for j in after if j not in deps]
            if after:
                orderings[p.index] = after
    return orderings


def levels_over(prepared: list[Prepared], orderings: dict[int, list[int]]) -> None:
    """Set each call's level again over data, ``depends_on`` and resource edges together.
    Calls on or behind a cycle keep no level; resource edges never close a cycle (they
    follow the ranks)."""
    n = len(prepared)
    waits: list[list[int]] = [[] for _ in range(n)]
    for p in prepared:
        if p.level is not None:
            waits[p.index] = [*p.deps, *orderings.get(p.index, ())]
    level: list[int | None] = [None] * n
    rank = ranks([p.deps for p in prepared])  # resource edges point up the ranks too
    for i in sorted(range(n), key=rank.__getitem__):
        if prepared[i].level is None:
            continue
        level[i] = max((lv + 1 for d in waits[i] if (lv := level[d]) is not None), default=0)
    for p in prepared:
        if p.level is not None:
            p.level = level[p.index]
