"""Helpers of the IVOA tests: strict VOTables, planes, Redis emptiness."""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits
from astropy.io.votable import parse

from tests.support.redis import stored_keys


def votable(response):
    """Parse a response's VOTable in astropy's strict mode."""
    return parse(io.BytesIO(response.content), verify="exception")


def table(response):
    """Return the first table of a strictly parsed VOTable response."""
    return (
        votable(response).get_first_table().to_table(use_names_over_ids=True)
    )


def query_status(response) -> tuple[str, str]:
    """Return the QUERY_STATUS INFO's value and text."""
    document = votable(response)
    for resource in document.resources:
        for info in resource.infos:
            if info.name == "QUERY_STATUS":
                return info.value, info.content or ""
    msg = "no QUERY_STATUS"
    raise AssertionError(msg)


def planes(data: bytes) -> dict[str, np.ndarray]:
    """Return the IMAGE, MASK and VARIANCE planes of a FITS file."""
    with fits.open(io.BytesIO(data)) as hdulist:
        return {
            name: np.array(hdulist[name].data)
            for name in ("IMAGE", "MASK", "VARIANCE")
            if name in hdulist
        }


def box_of(response) -> tuple[int, int, int, int]:
    """Return a cutout's box (x0, y0, x1, y1) from its header."""
    return tuple(int(v) for v in response.headers["x-recreate-box"].split(","))


def product_window(full: bytes, box, xy0) -> dict[str, np.ndarray]:
    """Return the planes of a full product inside a parent-frame box."""
    x0, y0, x1, y1 = box
    rows = slice(y0 - xy0[1], y1 - xy0[1])
    cols = slice(x0 - xy0[0], x1 - xy0[0])
    return {name: plane[rows, cols] for name, plane in planes(full).items()}


def xy0_of(data: bytes) -> tuple[int, int]:
    """Return a DP1 file's xy0 (from the IMAGE plane's LTV cards)."""
    with fits.open(io.BytesIO(data)) as hdulist:
        header = hdulist["IMAGE"].header
        return -int(header.get("LTV1", 0)), -int(header.get("LTV2", 0))


def redis_is_empty(*clients) -> bool:
    """Whether none of the Redis instances holds a key.

    A request's quota counters do not count: every request spends one.
    """
    return all(stored_keys(client) == [] for client in clients)
