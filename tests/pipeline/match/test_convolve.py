import hashlib

import numpy as np
import pytest
import scipy.ndimage

from recreate.errors import ProcessingError
from recreate.exposure import MaskPlanes
from recreate.pipeline.kernel import SolvedKernel
from recreate.pipeline.kernel.basis import KernelBasis
from recreate.pipeline.match.convolve import convolve_template, grow_mask

PLANES = MaskPlanes.afw_default()
NO_DATA = PLANES.value("NO_DATA")
BAD = PLANES.value("BAD")


def _kernel(size=7, height=20, width=24, spatial=0.2, seed=0):
    """Return an asymmetric kernel whose 26 shape terms vary in x and y."""
    rng = np.random.default_rng(seed)
    basis = KernelBasis(size, (0.8, 1.6, 3.2), (4, 2, 2))
    coefficients = np.zeros((27, 3))
    coefficients[0, 0] = 1.0
    coefficients[1:, 0] = rng.normal(0.0, 0.3, 26)
    coefficients[1:, 1:] = rng.normal(0.0, spatial, (26, 2))
    return SolvedKernel(
        basis=basis,
        coefficients=coefficients,
        background=rng.normal(size=6),
        bbox=(0, 0, width, height),
        spatial_kernel_order=1,
        spatial_bg_order=2,
        n_candidates=0,
        n_used=0,
    )


def _planes(height, width, border, seed=1):
    rng = np.random.default_rng(seed)
    shape = (height + 2 * border, width + 2 * border)
    image = rng.normal(0.0, 10.0, shape).astype(np.float32)
    variance = rng.uniform(1.0, 3.0, shape).astype(np.float32)
    return image, variance, np.zeros(shape, np.int32)


def _afw_loop(plane, kernel, border, square=False):
    """afw's convolveAtAPoint: out(x) = sum_u K_x(u) plane(x + u)."""
    half = kernel.basis.half_width
    height = plane.shape[0] - 2 * border
    width = plane.shape[1] - 2 * border
    out = np.zeros((height, width))
    for row in range(height):
        for col in range(width):
            local = kernel.kernel_image(col, row)
            if square:
                local = local * local
            r, c = row + border, col + border
            patch = plane[r - half : r + half + 1, c - half : c + half + 1]
            out[row, col] = np.sum(local * patch)
    return out


def test_asymmetric_kernel_is_applied_as_afw_does():
    kernel = _kernel(spatial=0.0)
    image, variance, mask = _planes(20, 24, 5)
    out, _, _ = convolve_template(
        image, variance, mask, PLANES, kernel, border=5
    )
    expected = _afw_loop(image.astype(np.float64), kernel, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=2e-5)
    # The same definition as scipy.ndimage.correlate, kernel centred.
    by_scipy = scipy.ndimage.correlate(
        image.astype(np.float64), kernel.kernel_image(0, 0), mode="constant"
    )[5:-5, 5:-5]
    np.testing.assert_allclose(out, by_scipy, rtol=1e-6, atol=2e-5)
    # The kernel is asymmetric enough that flipping it would show.
    flipped = scipy.ndimage.convolve(
        image.astype(np.float64), kernel.kernel_image(0, 0), mode="constant"
    )[5:-5, 5:-5]
    assert np.abs(out - flipped).max() > 1.0


def test_spatially_varying_kernel_is_the_local_kernel_at_every_pixel():
    kernel = _kernel(spatial=0.3)
    image, variance, mask = _planes(20, 24, 6)
    out, _, _ = convolve_template(
        image, variance, mask, PLANES, kernel, border=6
    )
    expected = _afw_loop(image.astype(np.float64), kernel, 6)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=2e-5)
    # Away from the centre the kernel differs from the central one.
    centre_only = _afw_loop(image.astype(np.float64), _kernel(spatial=0.0), 6)
    assert np.abs(out - centre_only)[0].max() > 0.1


def test_variance_is_convolved_with_the_squared_local_kernel():
    kernel = _kernel(spatial=0.3)
    image, variance, mask = _planes(20, 24, 5)
    _, out, _ = convolve_template(
        image, variance, mask, PLANES, kernel, border=5
    )
    expected = _afw_loop(variance.astype(np.float64), kernel, 5, square=True)
    np.testing.assert_allclose(out, expected, rtol=2e-6)


def test_mask_bits_grow_by_the_full_kernel_box():
    kernel = _kernel(size=7)
    image, variance, mask = _planes(20, 24, 5)
    mask[12, 14] = NO_DATA
    mask[24, 28] = BAD  # the science grid's last pixel
    mask[5, 5] = np.int32(-(2**31))
    _, _, out = convolve_template(
        image, variance, mask, PLANES, kernel, border=5
    )
    no_data = (out & NO_DATA) != 0
    rows, cols = np.nonzero(no_data)
    # Science pixel (7, 9) is input (12, 14); the box is 7 x 7.
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 10, 6, 12)
    assert no_data.sum() == 49
    bad = (out & BAD) != 0
    assert bad.sum() == 4 * 4  # clipped by the science grid's corner
    assert bad[16:, 20:].all()
    assert (out.view(np.uint32) >> 31).sum() == 4 * 4
    _, _, only = convolve_template(
        image,
        variance,
        mask,
        PLANES,
        kernel,
        border=5,
        grow_planes=["NO_DATA"],
    )
    np.testing.assert_array_equal(only, out & NO_DATA)


def test_grow_mask_matches_a_binary_dilation():
    rng = np.random.default_rng(4)
    mask = np.where(
        rng.random((60, 70)) < 0.01, 1 << rng.integers(0, 12, (60, 70)), 0
    )
    out = grow_mask(mask.astype(np.int32), 4, 0xFFFFFFFF)
    for bit in range(12):
        plane = (mask & (1 << bit)) != 0
        expected = scipy.ndimage.binary_dilation(plane, np.ones((9, 9), bool))
        np.testing.assert_array_equal(
            (out & (1 << bit)) != 0, expected[4:-4, 4:-4]
        )


def test_non_finite_inputs_stay_inside_the_kernel_box():
    kernel = _kernel(size=7, height=30, width=30)
    image, variance, mask = _planes(30, 30, 5)
    clean_image, clean_variance, _ = convolve_template(
        image, variance, mask, PLANES, kernel, border=5
    )
    image[20, 20] = np.nan
    variance[10, 30] = np.inf
    out_image, out_variance, _ = convolve_template(
        image, variance, mask, PLANES, kernel, border=5
    )
    hit = np.zeros(out_image.shape, bool)
    hit[12:19, 12:19] = True  # input (20, 20) is science (15, 15)
    assert np.isnan(out_image[hit]).all()
    np.testing.assert_allclose(out_image[~hit], clean_image[~hit], rtol=1e-6)
    inf_hit = np.zeros(out_variance.shape, bool)
    inf_hit[2:9, 22:29] = True
    assert np.isposinf(out_variance[inf_hit]).all()
    np.testing.assert_allclose(
        out_variance[~inf_hit], clean_variance[~inf_hit], rtol=1e-6
    )


def test_tiles_join_without_seams():
    height, width, border = 600, 560, 12
    kernel = _kernel(size=21, height=height, width=width, spatial=0.1)
    image, variance, mask = _planes(height, width, border)
    out, _, _ = convolve_template(
        image, variance, mask, PLANES, kernel, border=border
    )
    data = image.astype(np.float64)
    crop = (slice(border, border + height), slice(border, border + width))
    yy, xx = np.mgrid[0:height, 0:width]
    terms = [np.ones((height, width)), (xx - (width - 1) / 2) * 2 / width]
    terms.append((yy - (height - 1) / 2) * 2 / height)
    expected = sum(
        term * scipy.ndimage.correlate(data, component, mode="constant")[crop]
        for term, component in zip(
            terms, kernel.spatial_kernels(), strict=True
        )
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=2e-4)


def test_output_bytes_do_not_depend_on_workers():
    height, width, border = 700, 650, 20
    kernel = _kernel(size=21, height=height, width=width)
    image, variance, mask = _planes(height, width, border)
    mask[100:110, 200] = NO_DATA
    digests = set()
    for workers in (1, 2, 1, 3):
        planes = convolve_template(
            image,
            variance,
            mask,
            PLANES,
            kernel,
            border=border,
            workers=workers,
        )
        digest = hashlib.sha256()
        for plane in planes:
            digest.update(plane.tobytes())
        digests.add(digest.hexdigest())
    assert len(digests) == 1


def test_border_narrower_than_the_kernel_is_refused():
    kernel = _kernel(size=21)
    image, variance, mask = _planes(20, 24, 5)
    with pytest.raises(ProcessingError, match="narrower than the kernel"):
        convolve_template(image, variance, mask, PLANES, kernel, border=5)
