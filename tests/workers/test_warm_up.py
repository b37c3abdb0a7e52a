"""Workers warm the pipeline up once per process."""

from __future__ import annotations

from workers.state import start_warm_up


def test_a_process_warms_up_once():
    first = start_warm_up()
    if first is not None:
        first.join(timeout=60)
        assert not first.is_alive()
    assert start_warm_up() is None
