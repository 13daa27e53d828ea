"""The scheduler is a pure state machine: tested without an event loop, table-driven."""

from __future__ import annotations

import pytest

from toolweave._scheduler import Scheduler


def drive(deps: list[list[int]], fail: set[int], *, serial: bool = False) -> list[list[int]]:
    """Run the scheduler to the end; each round starts everything ready, then ends it."""
    s = Scheduler(deps, serial=serial)
    rounds = []
    while not s.finished:
        ready = s.take_ready()
        assert ready, "scheduler stalled with calls open"
        rounds.append(ready)
        for i in ready:
            if i in fail:
                s.failed(i)
            else:
                s.succeeded(i)
    return rounds


@pytest.mark.parametrize(
    ("deps", "fail", "rounds", "states"),
    [
        pytest.param([[], [], []], set(), [[0, 1, 2]], "SSS", id="all-independent"),
        pytest.param([[], [0], [1]], set(), [[0], [1], [2]], "SSS", id="chain"),
        pytest.param([[], [0], [0], [1, 2]], set(), [[0], [1, 2], [3]], "SSSS", id="diamond"),
        pytest.param([[], [0], [1]], {0}, [[0]], "FKK", id="failure-skips-descendants"),
        pytest.param([[], [], [0], [1]], {0}, [[0, 1], [3]], "FSKS", id="independent-still-run"),
        pytest.param([[], [], [0, 1]], {1}, [[0, 1]], "SFK", id="one-failed-parent-is-enough"),
        pytest.param([], set(), [], "", id="empty"),
    ],
)
def test_rounds_and_final_states(
    deps: list[list[int]], fail: set[int], rounds: list[list[int]], states: str
) -> None:
    s = Scheduler(deps)
    got = []
    while not s.finished:
        ready = s.take_ready()
        got.append(ready)
        for i in ready:
            s.failed(i) if i in fail else s.succeeded(i)
    assert got == rounds
    letter = {"succeeded": "S", "failed": "F", "skipped": "K"}
    assert "".join(letter[x] for x in s.state) == states


def test_ready_is_released_by_the_last_dependency_not_by_a_level() -> None:
    # 0 slow, 1 fast, 2 needs only 1: 2 is ready while 0 still runs.
    s = Scheduler([[], [], [1]])
    assert s.take_ready() == [0, 1]
    s.succeeded(1)
    assert s.take_ready() == [2]
    assert s.state[0] == "running"


def test_each_call_is_handed_out_once() -> None:
    s = Scheduler([[], [0]])
    assert s.take_ready() == [0]
    assert s.take_ready() == []
    s.succeeded(0)
    assert s.take_ready() == [1]
    assert s.take_ready() == []


def test_skipped_calls_remember_the_root_failure() -> None:
    s = Scheduler([[], [0], [1], [2]])
    s.take_ready()
    assert s.failed(0) == [1, 2, 3]
    assert s.cause == {1: 0, 2: 0, 3: 0}


def test_failing_several_at_once_reports_none_of_them_as_skipped() -> None:
    # 0 and 1 wait for each other (a cycle); both fail at the outset, 2 behind them is skipped.
    s = Scheduler([[1], [0], [1]])
    assert s.failed(0, 1) == [2]
    assert s.state == ["failed", "failed", "skipped"]
    assert s.finished


def test_a_final_call_cannot_end_twice() -> None:
    s = Scheduler([[]])
    s.take_ready()
    s.succeeded(0)
    with pytest.raises(ValueError, match="already ended as succeeded"):
        s.failed(0)


def test_skip_and_stop_touch_only_waiting_calls() -> None:
    s = Scheduler([[], [0], [0], [2]])
    assert s.take_ready() == [0]
    assert s.skip([2]) == [2, 3]
    assert s.stop() == [1]
    assert s.state == ["running", "skipped", "skipped", "skipped"]
    s.succeeded(0)
    assert s.finished


@pytest.mark.parametrize(
    ("deps", "fail", "rounds"),
    [
        pytest.param([[], [], []], set(), [[0], [1], [2]], id="one-at-a-time"),
        pytest.param([[], [0], []], {0}, [[0], [2]], id="failure-skips-only-dependents"),
    ],
)
def test_serial_mode_hands_out_one_call_at_a_time_in_batch_order(
    deps: list[list[int]], fail: set[int], rounds: list[list[int]]
) -> None:
    assert drive(deps, fail, serial=True) == rounds


def test_serial_mode_waits_for_the_running_call() -> None:
    s = Scheduler([[], []], serial=True)
    assert s.take_ready() == [0]
    assert s.take_ready() == []
    s.succeeded(0)
    assert s.take_ready() == [1]


def test_held_calls_wait_for_a_decision_and_can_be_skipped_or_resumed() -> None:
    s = Scheduler([[], [0], [0], [2]])
    assert s.take_ready() == [0]
    s.succeeded(0)
    assert s.take_ready() == [1, 2]
    s.hold([1, 2])
    assert s.state[1:3] == ["deciding", "deciding"]
    assert s.skip([2]) == [2, 3]
    assert s.resume([1, 2]) == [1]
    s.succeeded(1)
    assert s.finished


def test_stop_reaches_calls_held_for_another_decision() -> None:
    s = Scheduler([[], [0], [0]])
    s.take_ready()
    s.succeeded(0)
    s.hold(s.take_ready())
    assert s.stop() == [1, 2]
    assert s.resume([1, 2]) == []
    assert s.finished


def test_only_handed_out_calls_can_be_held() -> None:
    s = Scheduler([[], [0]])
    with pytest.raises(ValueError, match="call 1 cannot wait for a decision: it is waiting"):
        s.hold([1])


def test_in_serial_mode_a_held_call_still_occupies_the_turn() -> None:
    s = Scheduler([[], []], serial=True)
    s.hold(s.take_ready())
    assert s.take_ready() == []
    s.resume([0])
    s.succeeded(0)
    assert s.take_ready() == [1]


def test_calls_added_while_running_start_when_their_dependencies_allow() -> None:
    s = Scheduler([[]])
    assert s.take_ready() == [0]
    assert s.add([0]) == 1
    assert s.take_ready() == [], "call 0 is still running"
    s.succeeded(0)
    assert s.take_ready() == [1]
    assert s.add([0]) == 2
    assert s.take_ready() == [2], "its dependency already succeeded"


def test_a_call_added_behind_a_failure_is_skipped_at_once() -> None:
    s = Scheduler([[], [0]])
    s.take_ready()
    s.failed(0)
    i = s.add([1])
    assert s.state[i] == "skipped"
    assert s.cause[i] == 0
    s.add([])
    assert s.take_ready() == [3]


def test_a_parked_call_waits_until_unparked_with_its_dependencies() -> None:
    s = Scheduler([[]])
    s.take_ready()
    parked = s.add([], parked=True)
    s.succeeded(0)
    assert s.take_ready() == []
    later = s.add([parked])
    s.unpark(parked, [0])
    assert s.take_ready() == [parked]
    s.succeeded(parked)
    assert s.take_ready() == [later]
