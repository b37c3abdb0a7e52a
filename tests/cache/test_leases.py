"""Leases: one holder at a time, renewed while alive, lapsing when not."""

from __future__ import annotations

import time

from cache import Leases


def test_one_holder_at_a_time_and_renewal(control_redis):
    leases = Leases(control_redis)
    assert leases.take("campaign:a", "one", 5)
    assert not leases.take("campaign:a", "two", 5)
    # Renewing our own lease pushes its expiry back.
    control_redis.pexpire("recreate:lease:campaign:a", 100)
    assert leases.take("campaign:a", "one", 5)
    assert control_redis.pttl("recreate:lease:campaign:a") > 1000


def test_a_dead_holders_lease_lapses(control_redis):
    leases = Leases(control_redis)
    assert leases.take("campaign:b", "dead", 0.2)
    time.sleep(0.3)
    assert leases.take("campaign:b", "alive", 5)


def test_only_the_holder_gives_back(control_redis):
    leases = Leases(control_redis)
    leases.take("campaign:c", "one", 5)
    assert not leases.give_back("campaign:c", "two")
    assert leases.give_back("campaign:c", "one")
    assert leases.take("campaign:c", "two", 5)
