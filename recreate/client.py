"""Python client of the recreate HTTP API.

>>> from recreate.client import Client
>>> client = Client("http://localhost:8080")          # doctest: +SKIP
>>> hdulist = client.get(2024120100123, 42)            # doctest: +SKIP
>>> client.to_file(2024120100123, 42, "diffim.fits")   # doctest: +SKIP

A recreation that outlives the server's sync timeout answers 202 with a
job; the client polls the job and fetches the image when it is done, up
to its own ``timeout``. Errors come back as the project's error classes
(`DataNotFoundError`, `NoOverlapError`, ...), with the server's message.

A service that asks for a user takes a bearer token: ``token=``, or the
environment variable ``RECREATE_TOKEN``. A service that cannot be
reached is a `ServiceUnavailableError` naming its URL.

``output_format`` is a name of `recreate.formats` (``dp1``, the default;
``dp1-compressed``, lossless tile-compressed FITS of about half the
bytes; ``lsst-images``). `Client.cutout` asks for a region (a pixel box,
or a position and a size), rendered from the detector's solution;
`Client.solution` for the solution itself. A body cut short by the
server (a cached chunk found corrupt while it streamed; the server has
dropped it) is asked for once more.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
from astropy.io import fits

from recreate import errors
from recreate.client_errors import ERRORS_BY_CODE, error_from_response
from recreate.formats import DEFAULT_FORMAT, FORMATS
from recreate.formats import FITS as FITS_MEDIA_TYPE
from recreate.io.fitsfile import atomic_destination


@dataclass(frozen=True)
class Product:
    """Bytes of a difference image and what the server said of them."""

    data: bytes
    etag: str
    cache: str
    headers: dict[str, str]


class Client:
    """Talk to a recreate service.

    Parameters
    ----------
    url
        Base URL of the service (``http://host:8080``).
    timeout
        Seconds to wait for one image, polling its job if needed.
    poll_interval
        Seconds between polls of a running job.
    token
        Bearer token for a service that asks for a user (default: the
        environment variable ``RECREATE_TOKEN``, if set).
    transport
        An httpx transport (tests).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 600.0,
        poll_interval: float = 1.0,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.poll_interval = poll_interval
        token = token or os.environ.get("RECREATE_TOKEN") or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers=headers,
            transport=transport,
        )

    def __enter__(self) -> Self:
        """Use the client as a context manager."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the connection pool."""
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def get(
        self,
        visit: int,
        detector: int,
        *,
        instrument: str | None = None,
        output_format: str = DEFAULT_FORMAT,
    ) -> fits.HDUList:
        """Return the difference image as an astropy HDUList.

        Raises
        ------
        InvalidRequestError
            If the format is a PNG preview (use `fetch` or `to_file`).
        RecreateError
            The server's error, as the matching class.
        """
        known = FORMATS.get(output_format)
        if known is not None and known.media_type != FITS_MEDIA_TYPE:
            raise errors.InvalidRequestError(
                f"format {output_format!r} is a {known.media_type} preview, "
                "not FITS: use fetch() or to_file()"
            )
        product = self.fetch(
            visit, detector, instrument=instrument, output_format=output_format
        )
        return fits.open(io.BytesIO(product.data))

    def to_file(
        self,
        visit: int,
        detector: int,
        path: str | os.PathLike[str],
        *,
        instrument: str | None = None,
        output_format: str = DEFAULT_FORMAT,
        overwrite: bool = False,
    ) -> Product:
        """Write the difference image to ``path`` (atomically).

        Raises
        ------
        FileExistsError
            If ``path`` exists and ``overwrite`` is false.
        RecreateError
            The server's error, as the matching class.
        """
        target = Path(path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists (use overwrite)")
        product = self.fetch(
            visit, detector, instrument=instrument, output_format=output_format
        )
        with atomic_destination(target, overwrite=overwrite) as temporary:
            Path(temporary).write_bytes(product.data)
        return product

    def fetch(
        self,
        visit: int,
        detector: int,
        *,
        instrument: str | None = None,
        output_format: str = DEFAULT_FORMAT,
        extra: dict[str, Any] | None = None,
    ) -> Product:
        """Return the image's bytes and headers, polling a job if needed.

        ``extra``: more query parameters (a region's).

        Raises
        ------
        ComputeTimeoutError
            If the image is not ready within the client's timeout.
        RecreateError
            The server's error, as the matching class.
        """
        params: dict[str, Any] = {"format": output_format, **(extra or {})}
        if instrument:
            params["instrument"] = instrument
        response = self._poll(f"/api/v1/diffims/{visit}/{detector}", params)
        return Product(
            data=response.content,
            etag=response.headers.get("etag", "").strip('"'),
            cache=response.headers.get("x-cache", ""),
            headers=dict(response.headers),
        )

    def cutout(
        self,
        visit: int,
        detector: int,
        *,
        box: tuple[int, int, int, int] | None = None,
        ra: float | None = None,
        dec: float | None = None,
        size: int | None = None,
        instrument: str | None = None,
        output_format: str = DEFAULT_FORMAT,
        recipe: str | None = None,
    ) -> fits.HDUList:
        """Return a region of the difference image as an HDUList.

        Give ``box`` (parent pixels ``(x0, y0, x1, y1)``, x1 and y1
        exclusive) or ``ra``, ``dec`` (degrees) and ``size`` (pixels).
        The server renders it from the detector's solution (the same
        pixels as the full image) and clips it to the detector (its
        ``X-Recreate-Box`` header says what was served).

        Raises
        ------
        InvalidRequestError
            If neither or both ways are given, or the server refuses the
            region (outside the detector, too large).
        RecreateError
            The server's error, as the matching class.
        """
        params = _region_params(box, ra, dec, size)
        if recipe:
            params["recipe"] = recipe
        product = self.fetch(
            visit,
            detector,
            instrument=instrument,
            output_format=output_format,
            extra=params,
        )
        return fits.open(io.BytesIO(product.data))

    def solution(
        self,
        visit: int,
        detector: int,
        *,
        instrument: str | None = None,
        recipe: str | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> bytes:
        """Return the solution of a difference image (FITS bytes).

        Solved by the server if it has none yet; written to ``path``
        too (atomically) when given. `recreate.solution.
        solution_from_bytes` reads it.

        Raises
        ------
        RecreateError
            The server's error, as the matching class.
        """
        params: dict[str, Any] = {}
        if instrument:
            params["instrument"] = instrument
        if recipe:
            params["recipe"] = recipe
        data = self._poll(f"/api/v1/solutions/{visit}/{detector}", params)
        if path is not None:
            with atomic_destination(Path(path), overwrite=True) as temporary:
                Path(temporary).write_bytes(data.content)
        return data.content

    def _poll(self, path: str, params: dict[str, Any]) -> httpx.Response:
        """GET until 200, following a job (202); raise an error."""
        deadline = time.monotonic() + self.timeout
        while True:
            response = self._get_whole(path, params)
            if response.status_code == 200:
                return response
            if response.status_code != 202:
                raise error_from_response(response)
            self._wait_for_job(response.json()["id"], deadline)

    def _get_whole(self, path: str, params: dict[str, Any]) -> httpx.Response:
        """GET, asking once more when the body is cut short."""
        try:
            return self._send("GET", path, params=params)
        except httpx.RemoteProtocolError:
            # The server dropped a corrupt cached chunk mid-stream; the
            # next request recomputes the product.
            return self._send("GET", path, params=params)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; a service out of reach is one clear error.

        Raises
        ------
        ServiceUnavailableError
            If the service cannot be reached (refused, unknown host,
            timed out connecting).
        """
        try:
            return self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise errors.ServiceUnavailableError(
                f"cannot reach the service at {self.url}: {error}"
            ) from None

    def prewarm(
        self,
        name: str,
        *,
        keys: Sequence[tuple[int, int]] | None = None,
        selection: dict[str, Any] | None = None,
        priority: int = 0,
        instrument: str | None = None,
        output_format: str | None = None,
        solutions_only: bool = False,
    ) -> dict[str, Any]:
        """Start a prewarm campaign; return ``{"id", "url", "total"}``.

        Give either ``keys`` or a ``selection`` (visits, visit_range,
        day_obs_range, band, detectors, cone {ra, dec, radius}).
        ``solutions_only`` stores the keys' solutions (any region renders
        from them) instead of their products.

        Raises
        ------
        RecreateError
            The server's error (e.g. `PayloadTooLargeError`).
        """
        body: dict[str, Any] = {"name": name, "priority": priority}
        if keys is not None:
            body["keys"] = [{"visit": v, "detector": d} for v, d in keys]
        if selection is not None:
            body["selection"] = selection
        if instrument:
            body["instrument"] = instrument
        if output_format:
            body["format"] = output_format
        if solutions_only:
            body["solutions_only"] = True
        return self._json("POST", "/api/v1/campaigns", json=body)

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        """Return a campaign's state, counts, failures and ETA."""
        return self._json("GET", f"/api/v1/campaigns/{campaign_id}")

    def campaigns(self) -> list[dict[str, Any]]:
        """Return every campaign, newest first."""
        result: list[dict[str, Any]] = self._json("GET", "/api/v1/campaigns")
        return result

    def cancel_campaign(self, campaign_id: str) -> dict[str, Any]:
        """Cancel the keys of a campaign that have not started."""
        return self._json("DELETE", f"/api/v1/campaigns/{campaign_id}")

    def wait_for_campaign(
        self,
        campaign_id: str,
        *,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll a campaign until it is done or cancelled; return it.

        ``progress`` is called with the campaign after every poll.
        """
        while True:
            campaign = self.campaign(campaign_id)
            if progress is not None:
                progress(campaign)
            if campaign["state"] in ("done", "cancelled"):
                return campaign
            time.sleep(self.poll_interval)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; return its JSON body or raise its error."""
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.json()

    def health(self) -> dict[str, Any]:
        """Return the service's health report."""
        response = self._send("GET", "/api/v1/health")
        if response.status_code != 200:
            raise error_from_response(response)
        result: dict[str, Any] = response.json()
        return result

    def _wait_for_job(self, job_id: str, deadline: float) -> None:
        """Poll a job until it is done; raise its error if it failed."""
        while time.monotonic() < deadline:
            response = self._send("GET", f"/api/v1/jobs/{job_id}")
            if response.status_code != 200:
                raise error_from_response(response)
            job = response.json()
            if job["state"] == "done":
                return
            if job["state"] == "failed":
                error = job.get("error") or {}
                cls = ERRORS_BY_CODE.get(
                    error.get("code", ""), errors.ProcessingError
                )
                raise cls(error.get("message", f"job {job_id} failed"))
            time.sleep(self.poll_interval)
        raise errors.ComputeTimeoutError(
            f"job {job_id} was not done within {self.timeout:g} s"
        )


def _region_params(
    box: tuple[int, int, int, int] | None,
    ra: float | None,
    dec: float | None,
    size: int | None,
) -> dict[str, Any]:
    """Return a region's query parameters.

    Raises
    ------
    InvalidRequestError
        Unless exactly one of ``box`` or all of ``ra``, ``dec``, ``size``
        is given.
    """
    sky = (ra, dec, size)
    if box is not None and all(value is None for value in sky):
        x0, y0, x1, y1 = box
        return {"box": f"{x0},{y0},{x1},{y1}"}
    if box is None and all(value is not None for value in sky):
        return {"ra": ra, "dec": dec, "size": size}
    raise errors.InvalidRequestError(
        "give either box=(x0, y0, x1, y1) or ra, dec and size"
    )
