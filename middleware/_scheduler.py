"""Which calls may start now: a pure state machine over batch indexes.

Like ``graphlib.TopologicalSorter`` it separates "what is ready" from running it: the executor
reports outcomes (``succeeded``, ``failed``, ``skip``, ``stop``) and asks ``take_ready()`` for the
calls that became startable. It never awaits and never runs anything, so it is tested without
an event loop. Unlike graphlib it knows failure: a failed call's descendants are skipped at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

__all__ = ["FINAL", "Scheduler", "State"]

State = Literal["waiting", "deciding", "running", "succeeded", "failed", "skipped"]
_NOT_STARTED = frozenset({"waiting", "deciding"})
_FINAL = frozenset({"succeeded", "failed", "skipped"})
FINAL = _FINAL
"""The states a call ends in."""


class Scheduler:
    """Tracks every call of a batch from waiting to a final state.

    ``deps[i]`` lists the indexes call ``i`` waits for. With ``serial=True`` at most one call
    runs at a time, in batch order, and a failure still skips only its dependents.
    """

    def __init__(self, deps: Sequence[Sequence[int]], *, serial: bool = False) -> None:
        n = len(deps)
        self.state: list[State] = ["waiting"] * n
        self.cause: dict[int, int] = {}
        """Skipped call -> the call whose failure (or skip) it inherited."""
        self._serial = serial
        self._missing = list(map(len, deps))
        self._succ: list[list[int]] = [[] for _ in range(n)]
        ready: list[int] = []
        for i, ds in enumerate(deps):
            if ds:
                for d in ds:
                    self._succ[d].append(i)
            else:
                ready.append(i)
        self._ready = ready
        self._next = 0  # serial mode: the first index not yet handed out or final
        self._running = 0
        self._open = n
        self.ended: list[int] = []
        """Every call in the order it reached a final state (read from a cursor)."""
        self.clock = 0
        """Counts the moments calls left the not-started states; see ``waiting_descendants``."""
        self._left_at: list[int | None] = [None] * n

    @property
    def finished(self) -> bool:
        """True when every call has a final state."""
        return self._open == 0

    def take_ready(self) -> list[int]:
        """Calls that may start now, in batch order; each is handed out once."""
        if self._serial:
            return self._take_serial()
        state = self.state
        ready = [i for i in self._ready if state[i] == "waiting"]
        ready.sort()
        self._ready = []
        for i in ready:
            self.state[i] = "running"
            self._leave(i)
        self._running += len(ready)
        return ready

    def add(self, deps: Sequence[int], *, parked: bool = False) -> int:
        """A call that arrives while the batch runs (a streamed batch): its index. It is ready
        at once if every dependency succeeded, skipped at once if one failed or was skipped.
        A ``parked`` call waits, with no edges yet, until ``unpark`` gives its dependencies."""
        i = len(self.state)
        self.state.append("waiting")
        self._left_at.append(None)
        self._succ.append([])
        self._open += 1
        if parked:
            self._missing.append(1)  # a sentinel that only unpark() clears
            return i
        self._wire(i, deps)
        return i

    def unpark(self, i: int, deps: Sequence[int]) -> list[int]:
        """Give a parked call its dependencies; it may become ready or skipped at once. Return
        the calls skipped now: it, and what was added behind it meanwhile."""
        if self.state[i] != "waiting":
            return []  # skipped meanwhile (a stop)
        self._missing[i] = 0
        return self._wire(i, deps)

    def _wire(self, i: int, deps: Sequence[int]) -> list[int]:
        missing = 0
        doomed: int | None = None
        for d in deps:
            self._succ[d].append(i)
            if self.state[d] in ("failed", "skipped"):
                doomed = self.cause.get(d, d)
            elif self.state[d] != "succeeded":
                missing += 1
        if i == len(self._missing):
            self._missing.append(missing)
        else:
            self._missing[i] = missing
        if doomed is not None:
            self._finish(i, "skipped")
            self.cause[i] = doomed
            return [i, *self._skip_descendants(i, doomed)]
        if missing == 0:
            self._ready.append(i)
        return []

    def hold(self, indexes: Iterable[int]) -> None:
        """Calls handed out by ``take_ready()`` wait for a decision before they start."""
        for i in indexes:
            if self.state[i] != "running":
                raise ValueError(f"call {i} cannot wait for a decision: it is {self.state[i]}")
            self.state[i] = "deciding"
            self._left_at[i] = None

    def resume(self, indexes: Iterable[int]) -> list[int]:
        """A decision let these calls start; return those still held (a stop may have skipped
        the others meanwhile)."""
        resumed = [i for i in indexes if self.state[i] == "deciding"]
        for i in resumed:
            self.state[i] = "running"
            self._leave(i)
        return resumed

    def succeeded(self, i: int) -> None:
        """Call ``i`` returned: its dependents lose one thing to wait for."""
        self._finish(i, "succeeded")
        for s in self._succ[i]:
            self._missing[s] -= 1
            if self._missing[s] == 0 and self.state[s] == "waiting":
                self._ready.append(s)

    def failed(self, *indexes: int) -> list[int]:
        """These calls failed (they may never have started); skip and return their
        descendants. All are marked failed before any descendant is skipped, so a failed call
        is never reported as skipped because of another one given here."""
        for i in indexes:
            self._finish(i, "failed")
        skipped: list[int] = []
        for i in indexes:
            skipped += self._skip_descendants(i, i)
        return sorted(skipped)

    def skip(self, indexes: Iterable[int], cause: int | None = None) -> list[int]:
        """Skip calls that have not started, and their descendants; return all newly skipped.
        ``cause`` names the call to blame, else each skipped call is its own cause."""
        skipped: list[int] = []
        for i in indexes:
            if self.state[i] in _NOT_STARTED:
                self._finish(i, "skipped")
                if cause is not None:
                    self.cause[i] = cause
                skipped.append(i)
                skipped += self._skip_descendants(i, i if cause is None else cause)
        return skipped

    def stop(self) -> list[int]:
        """Skip every call that has not started (held ones included); running ones finish.
        Return those skipped."""
        return self.skip([i for i, s in enumerate(self.state) if s in _NOT_STARTED])

    def waiting_descendants(
        self, indexes: Iterable[int], as_of: tuple[int, int] | None = None
    ) -> list[int]:
        """Calls not started yet that wait, directly or not, on any of ``indexes``.

        ``as_of`` is a ``snapshot()`` taken earlier: the answer is then what it was at that
        moment, so the search can be put off until someone reads it."""
        clock, n = as_of if as_of is not None else (self.clock, len(self.state))
        left_at = self._left_at
        seen: set[int] = set()
        stack = [s for i in indexes for s in self._succ[i]]
        while stack:
            i = stack.pop()
            if i in seen or i >= n:
                continue
            left = left_at[i]
            if left is None or left > clock:
                seen.add(i)
                stack.extend(self._succ[i])
        return sorted(seen)

    def snapshot(self) -> tuple[int, int]:
        """The present moment, for ``waiting_descendants(..., as_of=...)``."""
        return self.clock, len(self.state)

    def _leave(self, i: int) -> None:
        if self._left_at[i] is None:  # the first moment it is no longer waiting
            self.clock += 1
            self._left_at[i] = self.clock

    def _finish(self, i: int, state: State) -> None:
        current = self.state[i]
        if current in _FINAL:
            raise ValueError(f"call {i} already ended as {current}")
        if current in ("running", "deciding"):
            self._running -= 1
        self.state[i] = state
        self._leave(i)
        self._open -= 1
        self.ended.append(i)

    def _skip_descendants(self, root: int, cause: int) -> list[int]:
        skipped: list[int] = []
        stack = list(self._succ[root])
        while stack:
            i = stack.pop()
            if self.state[i] in _NOT_STARTED:
                self._finish(i, "skipped")
                self.cause[i] = self.cause.get(cause, cause)
                skipped.append(i)
                stack.extend(self._succ[i])
        skipped.sort()
        return skipped

    def _take_serial(self) -> list[int]:
        if self._running:
            return []
        n = len(self.state)
        while self._next < n and self.state[self._next] in _FINAL:
            self._next += 1
        if self._next == n:
            return []
        i = self._next
        if self._missing[i]:
            return []  # parked in a streamed batch: it waits for the stream to close
        # Earlier calls are all final; dependencies point backward only, so i is startable.
        self.state[i] = "running"
        self._leave(i)
        self._running += 1
        return [i]
