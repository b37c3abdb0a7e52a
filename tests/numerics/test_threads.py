"""`beside`: independent work beside a block, serial with one thread."""

from __future__ import annotations

import threading

import pytest

from recreate.numerics.threads import ENV_VAR, beside, thread_count


def test_thread_count_reads_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, "3")
    assert thread_count() == 3
    monkeypatch.setenv(ENV_VAR, "zero")
    with pytest.raises(ValueError, match="'zero'"):
        thread_count()


def test_two_threads_run_the_call_while_the_block_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, "2")
    started = threading.Event()

    def call() -> str:
        started.set()
        return threading.current_thread().name

    with beside(call) as result:
        # The block waits for the call to start: only a second thread
        # can make that happen.
        assert started.wait(timeout=10)
        name = result()
    assert name != threading.current_thread().name


def test_one_thread_makes_the_call_when_asked_in_this_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, "1")
    calls: list[str] = []

    def call() -> int:
        calls.append(threading.current_thread().name)
        return len(calls)

    with beside(call) as result:
        assert calls == []
        assert result() == 1
        assert result() == 1
    assert calls == [threading.current_thread().name]


@pytest.mark.parametrize("threads", ["1", "2"])
def test_the_calls_error_is_raised_by_its_result(
    monkeypatch: pytest.MonkeyPatch, threads: str
) -> None:
    monkeypatch.setenv(ENV_VAR, threads)

    def call() -> int:
        raise ArithmeticError("beside failed")

    with (
        pytest.raises(ArithmeticError, match="beside failed"),
        beside(call) as result,
    ):
        result()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_a_block_that_fails_first_raises_its_own_error(
    monkeypatch: pytest.MonkeyPatch, threads: str
) -> None:
    monkeypatch.setenv(ENV_VAR, threads)
    finished = threading.Event()

    def call() -> None:
        finished.set()
        raise ArithmeticError("never seen")

    with pytest.raises(LookupError, match="block first"), beside(call):
        raise LookupError("block first")
    # Two threads: the call was waited for; one thread: never made.
    assert finished.is_set() == (threads == "2")
