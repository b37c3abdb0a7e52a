"""The Python client and ``recreate get --url`` against the real API."""

from __future__ import annotations

import hashlib

import pytest
from astropy.io import fits

from recreate.client import Client
from recreate.errors import (
    DataNotFoundError,
    InvalidRequestError,
    NoOverlapError,
)
from workers.cli import main


def test_client_get_returns_an_hdulist(api_url, http, full_key):
    with Client(api_url) as client:
        hdulist = client.get(*full_key)
    assert [hdu.name for hdu in hdulist][1:4] == ["IMAGE", "MASK", "VARIANCE"]
    image = hdulist["IMAGE"].data
    assert image.dtype.kind == "f"
    assert hdulist[0].header["RECREATE PLANES SHA256"]


def test_client_to_file_writes_the_served_bytes(
    api_url, http, full_key, tmp_path
):
    path = tmp_path / "diffim.fits"
    with Client(api_url) as client:
        product = client.to_file(*full_key, path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == product.etag
        with pytest.raises(FileExistsError):
            client.to_file(*full_key, path)
        again = client.to_file(*full_key, path, overwrite=True)
    assert again.cache == "hit"
    assert again.etag == product.etag


def test_client_raises_the_servers_error(
    api_url, http, full_key, uncovered_key
):
    with Client(api_url) as client:
        with pytest.raises(DataNotFoundError, match="999"):
            client.get(full_key[0], 999)
        with pytest.raises(InvalidRequestError, match="tiff"):
            client.get(*full_key, output_format="tiff")
        with pytest.raises(InvalidRequestError, match=r"preview.*fetch"):
            client.get(*full_key, output_format="png")
        with pytest.raises(NoOverlapError):
            client.get(*uncovered_key)


def test_client_follows_a_job_to_the_image(
    ci_repo,
    redis_cache_server,
    redis_control_server,
    thread_cluster,
    http,
    full_key,
):
    from tests.support.service import running_api
    from tests.workers.conftest import service_settings

    settings = service_settings(
        ci_repo,
        redis_cache_server.url,
        redis_control_server.url,
        thread_cluster.scheduler_address,
        sync_timeout_seconds=0.01,
    )
    with (
        running_api(settings) as url,
        Client(url, poll_interval=0.1) as client,
    ):
        product = client.fetch(*full_key)
    assert product.cache == "hit"
    assert fits.getheader(__import__("io").BytesIO(product.data), 0)


def test_cli_get_url_writes_the_file(
    api_url, http, full_key, tmp_path, capsys
):
    out = tmp_path / "d.fits"
    code = main(
        [
            "get",
            str(full_key[0]),
            str(full_key[1]),
            "--url",
            api_url,
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert out.stat().st_size > 0
    assert "cache miss" in capsys.readouterr().out


def test_cli_get_url_reports_errors_in_one_line(
    api_url, http, full_key, tmp_path, capsys
):
    code = main(
        [
            "get",
            str(full_key[0]),
            "999",
            "--url",
            api_url,
            "-o",
            str(tmp_path / "d.fits"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("recreate: error:")
    assert "999" in err
    assert "\n" not in err
    assert not (tmp_path / "d.fits").exists()
