"""Every cache error survives pickling (Dask ships errors that way)."""

from __future__ import annotations

import pickle

import pytest

from cache.errors import (
    CacheUnavailableError,
    CorruptValueError,
    JobNotFoundError,
    RedisServerError,
    RedisServerNotFoundError,
)
from recreate.errors import RecreateError


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (CacheUnavailableError, "cache_unavailable", 503),
        (CorruptValueError, "corrupt_cache_value", 500),
        (JobNotFoundError, "job_not_found", 404),
        (RedisServerError, "redis_server_failed", 500),
        (RedisServerNotFoundError, "redis_server_not_found", 500),
    ],
)
def test_error_round_trips_through_pickle(
    cls: type[RecreateError], code: str, status: int
) -> None:
    error = cls("Redis at redis://127.0.0.1:1/0 failed")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert (copy.code, copy.status) == (code, status)
    assert isinstance(copy, RecreateError)


def test_user_facing_flags() -> None:
    assert CacheUnavailableError.user_facing is False
    assert CorruptValueError.user_facing is False
    assert JobNotFoundError.user_facing is True
    assert issubclass(RedisServerNotFoundError, FileNotFoundError)
