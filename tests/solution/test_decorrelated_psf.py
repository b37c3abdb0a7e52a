"""The dp1-decorrelated-psf format: a region's PSF is the detector's."""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits

from recreate.decorrelated_psf import DECORRELATED_PSF_EXTNAME
from recreate.formats import get_format
from recreate.numerics.box import PixelBox
from recreate.solution import read_inputs_for_box, read_inputs_whole, render
from recreate.solution.product import rendered_result


def _hdus(data: bytes) -> dict[str, np.ndarray]:
    with fits.open(io.BytesIO(data)) as hdulist:
        return {
            hdu.name: np.array(hdu.data)
            for hdu in hdulist[1:]
            if hdu.name in ("IMAGE", DECORRELATED_PSF_EXTNAME)
        }


def test_a_region_carries_the_whole_detectors_decorrelated_psf(products):
    product = products["dp1-full"]
    solution = product.solution
    config = solution.config()
    fmt = get_format("dp1-decorrelated-psf")
    whole = fmt.to_bytes(
        rendered_result(
            solution,
            product.full,
            read_inputs_whole(product.found, config),
        )
    )
    x0, y0 = product.full.xy0
    box = PixelBox(x0 + 30, y0 + 40, 51, 51)
    inputs = read_inputs_for_box(product.found, solution, box)
    region = fmt.to_bytes(
        rendered_result(solution, render(solution, inputs, box), inputs)
    )
    full_hdus, region_hdus = _hdus(whole), _hdus(region)
    # The same filtered PSF at every node: the decorrelation is the
    # detector's (its kernel at the detector's centre), not the box's.
    full_psf = full_hdus[DECORRELATED_PSF_EXTNAME]
    assert full_psf.size > 0
    assert np.array_equal(region_hdus[DECORRELATED_PSF_EXTNAME], full_psf)
    # ...beside the region's own pixels, which are the product's.
    assert np.array_equal(
        region_hdus["IMAGE"],
        full_hdus["IMAGE"][40:91, 30:81],
        equal_nan=True,
    )
    # And it differs from the science PSF it was filtered from.
    science = product.full.psf
    assert science is not None
    assert science.grid is not None
    assert not np.array_equal(
        full_psf.reshape(science.grid.images.shape), science.grid.images
    )
