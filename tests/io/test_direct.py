"""The direct writer's bytes are the reference writer's, or it declines."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import Exposure
from recreate.io.difference import difference_bytes, read_kernel
from recreate.io.direct import direct_difference_bytes
from tests.support.exposures import make_exposure

KERNEL = {
    "basis": {"size": 21, "sigmas": [0.7, 1.4, 2.8], "degrees": [4, 2, 2]},
    "coefficients": [[1.0, 0.0, 0.0], [0.125, -3e-5, 1e-17]],
    "note": "it's \u00e9",
}


def _cut(exposure: Exposure, height: int, width: int) -> Exposure:
    """Return the first ``height`` x ``width`` pixels of an exposure."""
    return dataclasses.replace(
        exposure,
        image=exposure.image[:height, :width],
        variance=exposure.variance[:height, :width],
        mask=exposure.mask[:height, :width],
    )


def _variants() -> dict[str, Exposure]:
    full = make_exposure()
    one = _cut(full, 1, 1)
    return {
        "full": full,
        "one-pixel": one,
        "no-wcs": dataclasses.replace(full, wcs=None),
        "no-psf": dataclasses.replace(full, psf=None),
        "no-observation": dataclasses.replace(one, observation=None),
        "awkward-metadata": dataclasses.replace(
            one,
            metadata={
                "NOTHING": None,
                "QUOTE": "it's",
                "LONG": "a very long string " * 8,
                "HIERARCH-LIKE NAME": -(10**20),
                "BUNIT": "adu",
                "E": 1e-300,
            },
        ),
    }


VARIANTS = [
    "full",
    "one-pixel",
    "no-wcs",
    "no-psf",
    "no-observation",
    "awkward-metadata",
]


@pytest.mark.parametrize("name", VARIANTS)
def test_the_bytes_are_the_reference_writers(name):
    exposure = _variants()[name]
    data = direct_difference_bytes(exposure, KERNEL)
    assert data is not None
    assert data == difference_bytes(exposure, KERNEL, compress=False)
    with fits.open(io.BytesIO(data)) as hdulist:
        assert read_kernel(hdulist) == KERNEL


@pytest.mark.parametrize(
    "metadata",
    [{"TFIELDS": 3}, {"note": 1, "NOTE": 2}],
    ids=["stripped-key", "merged-keys"],
)
def test_what_astropy_would_change_is_left_to_it(metadata):
    exposure = dataclasses.replace(make_exposure(), metadata=metadata)
    assert direct_difference_bytes(exposure, KERNEL) is None


def test_a_plane_of_another_type_is_left_to_astropy():
    exposure = make_exposure()
    # An Exposure coerces its planes; one changed afterwards is not.
    exposure.variance = exposure.variance.astype(np.float64)
    assert direct_difference_bytes(exposure, KERNEL) is None


@pytest.mark.parametrize(
    "metadata",
    [{"BAD": "caf\u00e9"}, {"NAN": float("nan")}, {"EXPTIME": 1.0}],
)
def test_bad_cards_fail_as_in_the_reference_writer(metadata):
    exposure = dataclasses.replace(
        _cut(make_exposure(), 2, 2), metadata=metadata
    )
    with pytest.raises(FormatError) as reference:
        difference_bytes(exposure, KERNEL, compress=False)
    with pytest.raises(FormatError) as direct:
        direct_difference_bytes(exposure, KERNEL)
    assert str(direct.value) == str(reference.value)
