"""Every error pickles (Dask ships them) and keeps its code and status."""

from __future__ import annotations

import pickle

import pytest

from recreate import errors


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


ALL = sorted(set(_subclasses(errors.RecreateError)), key=lambda c: c.__name__)


def test_every_error_class_is_covered():
    names = {cls.__name__ for cls in ALL}
    assert {"NoOverlapError", "TransientError", "OverloadedError"} <= names


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_errors_pickle_with_their_code_and_message(cls):
    error = cls("visit 42 is not in the repository")
    back = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert type(back) is cls
    assert str(back) == str(error)
    assert back.code == cls.code
    assert back.status == cls.status
    assert isinstance(back.transient, bool)
    if cls.user_facing:
        assert 400 <= cls.status < 600


def test_user_errors_are_4xx_and_transient_ones_503():
    for cls in ALL:
        if cls.transient:
            assert cls.status == 503, cls
        elif cls.user_facing:
            assert 400 <= cls.status < 500, cls


def test_every_code_names_its_class():
    for cls in ALL:
        if cls.__module__ == errors.__name__:
            assert errors.error_class(cls.code) is cls
    assert errors.error_class("no such code") is errors.RecreateError
