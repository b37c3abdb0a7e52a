"""Settings: secrets, the format registry, and the CLI's defaults."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from cache import DEFAULT_CHUNK_BYTES
from workers.cli import _build_parser
from workers.commands import DEFAULT_REPO, repo_of
from workers.settings import CHUNK_BYTES, Settings


def test_the_redis_password_is_a_secret():
    secret = secrets.token_hex(12)
    settings = Settings(redis_password=secret)
    assert secret not in repr(settings)
    assert secret not in repr(settings.redis_config())
    config = settings.redis_config()
    assert config.password is not None
    assert config.password.get_secret_value() == secret


def test_the_default_format_comes_from_the_registry():
    assert Settings(default_format="dp1-compressed").default_format == (
        "dp1-compressed"
    )
    with pytest.raises(ValidationError, match="tiff"):
        Settings(default_format="tiff")


def test_the_chunk_size_is_the_caches():
    assert CHUNK_BYTES == DEFAULT_CHUNK_BYTES


def test_the_cli_takes_its_repository_from_the_settings(monkeypatch):
    parser = _build_parser()
    monkeypatch.delenv("RECREATE_BUTLER_REPO", raising=False)
    assert repo_of(parser.parse_args(["info"])) == "data/demo-repo"
    monkeypatch.setenv("RECREATE_BUTLER_REPO", "/somewhere/repo")
    assert repo_of(parser.parse_args(["info"])) == "/somewhere/repo"
    given = parser.parse_args(["info", "--repo", "/given"])
    assert repo_of(given) == "/given"


def test_the_clis_written_out_default_repository_is_the_settings():
    # Written out so that building the parser imports no pydantic.
    assert Settings.model_fields["butler_repo"].default == DEFAULT_REPO
