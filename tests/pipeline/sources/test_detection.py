"""Tests of PSF-smoothed detection and the difference detection planes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import ndimage

from recreate.exposure import MaskPlanes
from recreate.numerics.robust import clipped_mean_std
from recreate.numerics.smoothing import smoothing_kernel
from recreate.pipeline.config import SubtractConfig
from recreate.pipeline.sources import detection, footprints
from recreate.pipeline.sources.detection import detect, set_detection_planes
from recreate.pipeline.sources.measure import FWHM_PER_SIGMA
from tests.pipeline.scenes import gaussian_star_image, psf_flux_for_snr
from tests.support.morphology import (
    dilate_box,
    dilate_disk,
    disk_rectangles,
)

PLANES = MaskPlanes.afw_default()
SIGMA = 2.0  # PSF sigma, pixels
FWHM = SIGMA * FWHM_PER_SIGMA
NOISE = 10.0


def blank(shape=(256, 256)):
    return np.zeros(shape, dtype=np.int32)


def star_field(shape, xs, ys, snrs, seed=1):
    fluxes = [psf_flux_for_snr(s, SIGMA, NOISE) for s in snrs]
    return gaussian_star_image(shape, xs, ys, fluxes, SIGMA, NOISE, seed)


def nearest(detections, x, y):
    distance = np.hypot(detections.x - x, detections.y - y)
    index = int(np.argmin(distance))
    return index, float(distance[index])


def test_smoothing_kernel_matches_afw_width():
    # afw: (int(7 sigma + 0.5) // 2) * 2 + 1, unit sum, symmetric.
    for sigma, width in ((1.0, 7), (2.0, 15), (1.9, 13), (3.3, 23)):
        kernel = smoothing_kernel(sigma)
        assert len(kernel) == width
        assert kernel.sum() == pytest.approx(1.0)
        assert np.allclose(kernel, kernel[::-1])


def test_finds_injected_stars_above_five_sigma():
    xs = [40.3, 100.7, 160.1, 220.5, 60.0, 200.2]
    ys = [50.6, 180.2, 90.9, 40.4, 220.0, 210.7]
    snrs = [8.0, 10.0, 15.0, 30.0, 12.0, 60.0]
    image, variance = star_field((256, 256), xs, ys, snrs)
    found = detect(image, variance, blank(), PLANES, FWHM, 5.0)
    for x, y, snr in zip(xs, ys, snrs, strict=True):
        index, distance = nearest(found, x, y)
        # Centroid noise is about sqrt(2) sigma / (S/N) per axis.
        assert distance < 4 * SIGMA / snr
        # The measured S/N scatters by about 1 about the truth.
        assert found.snr[index] == pytest.approx(snr, abs=3.5)
    assert len(found) == len(xs)
    assert not np.any(found.negative)


def test_no_false_positives_on_pure_noise():
    # The expected number of 5-sigma maxima of a 512x512 white-noise
    # field smoothed with sigma 2 is about 0.04 (Euler characteristic
    # of a Gaussian field); allow one.
    rng = np.random.default_rng(5)
    image = rng.normal(0.0, NOISE, (512, 512)).astype(np.float32)
    variance = np.full(image.shape, NOISE**2, dtype=np.float32)
    found = detect(
        image,
        variance,
        blank(image.shape),
        PLANES,
        FWHM,
        5.0,
        polarity="both",
    )
    assert len(found) <= 1
    # ...while a 3-sigma threshold does find noise peaks: the test can
    # tell a working threshold from a broken one.
    low = detect(
        image,
        variance,
        blank(image.shape),
        PLANES,
        FWHM,
        3.0,
        polarity="both",
    )
    assert len(low) > 10
    assert np.any(low.negative)
    assert np.any(~low.negative)


def test_centroids_accurate_at_high_snr():
    xs = np.array([50.0, 120.27, 190.5, 60.81, 150.33, 210.64])
    ys = np.array([60.0, 70.41, 55.5, 170.19, 190.88, 160.05])
    image, variance = star_field((256, 256), xs, ys, [300.0] * 6)
    found = detect(image, variance, blank(), PLANES, FWHM, 5.0)
    for x, y in zip(xs, ys, strict=True):
        index, _ = nearest(found, x, y)
        assert abs(found.x[index] - x) < 0.05
        assert abs(found.y[index] - y) < 0.05


def test_flux_is_the_gaussian_psf_flux():
    flux = psf_flux_for_snr(200.0, SIGMA, NOISE)
    image, variance = gaussian_star_image(
        (128, 128), [64.2], [63.7], [flux], SIGMA, NOISE, seed=3
    )
    found = detect(image, variance, blank((128, 128)), PLANES, FWHM, 5.0)
    assert len(found) == 1
    assert found.flux[0] == pytest.approx(flux, rel=0.02)
    assert found.flux_err[0] == pytest.approx(flux / 200.0, rel=0.02)


def test_negative_sources_detected_and_flagged():
    image, variance = star_field(
        (200, 200), [60.0, 140.0], [100, 100], [40, 40]
    )
    image[:, 100:] *= -1  # the second star becomes a trough
    found = detect(
        image,
        variance,
        blank((200, 200)),
        PLANES,
        FWHM,
        5.0,
        polarity="both",
    )
    assert len(found) == 2
    positive, negative = (
        int(np.argmin(found.negative)),
        int(np.argmax(found.negative)),
    )
    assert found.x[positive] == pytest.approx(60.0, abs=0.3)
    assert found.x[negative] == pytest.approx(140.0, abs=0.3)
    assert found.flux[negative] < 0 < found.flux[positive]
    assert found.snr[negative] > 30
    only_negative = detect(
        image,
        variance,
        blank((200, 200)),
        PLANES,
        FWHM,
        5.0,
        polarity="negative",
    )
    assert len(only_negative) == 1
    assert only_negative.negative[0]


def test_set_detection_planes_marks_both_polarities_and_clears_old():
    image, variance = star_field(
        (200, 200), [60.0, 140.0], [100, 100], [40, 40]
    )
    image[:, 100:] *= -1
    mask = blank((200, 200))
    detected = PLANES.value("DETECTED")
    negative = PLANES.value("DETECTED_NEGATIVE")
    mask[10:20, 10:20] = detected | negative  # stale bits
    mask[150, 150] = PLANES.value("SAT")
    out, planes = set_detection_planes(
        image, variance, mask, PLANES, FWHM, SubtractConfig()
    )
    assert out.dtype == np.int32
    assert planes == PLANES
    assert out[100, 60] & detected and not out[100, 60] & negative
    assert out[100, 140] & negative and not out[100, 140] & detected
    assert not np.any(out[10:20, 10:20] & (detected | negative))
    assert out[150, 150] & PLANES.value("SAT")
    # Footprints are grown by int(2.4 sigma + 0.5) = 5 px beyond the
    # threshold, so they are wider than the PSF core.
    labels, count = ndimage.label(out & detected)
    assert count == 1
    assert np.count_nonzero(labels) > 100
    # The input mask is left alone.
    assert mask[15, 15] == detected | negative


def test_set_detection_planes_adds_missing_planes_and_edge_border():
    image, variance = star_field((120, 120), [60.0], [60.0], [40])
    planes = MaskPlanes({"BAD": 0, "SAT": 1, "NO_DATA": 8})
    out, new_planes = set_detection_planes(
        image, variance, blank((120, 120)), planes, FWHM, SubtractConfig()
    )
    for name in ("DETECTED", "DETECTED_NEGATIVE", "EDGE"):
        assert name in new_planes
    assert out[60, 60] & new_planes.value("DETECTED")
    # afw marks EDGE where its smoothing kernel does not fit: 7 px here.
    edge = new_planes.value("EDGE")
    half = len(smoothing_kernel(SIGMA)) // 2
    assert np.all(out[:half] & edge) and np.all(out[:, -half:] & edge)
    assert not np.any(out[half:-half, half:-half] & edge)


def test_excluded_planes_cannot_seed_detections():
    image, variance = star_field(
        (200, 200), [50.0, 150.0], [100, 100], [50, 50]
    )
    mask = blank((200, 200))
    mask[98:103, 148:153] = PLANES.value("BAD")
    found = detect(image, variance, mask, PLANES, FWHM, 5.0)
    assert len(found) == 1
    assert found.x[0] == pytest.approx(50.0, abs=0.3)
    # SAT is not excluded by default: the same star is found.
    mask[98:103, 148:153] = PLANES.value("SAT")
    assert len(detect(image, variance, mask, PLANES, FWHM, 5.0)) == 2
    # ...unless asked for.
    found = detect(
        image, variance, mask, PLANES, FWHM, 5.0, exclude_planes=("SAT",)
    )
    assert len(found) == 1


def test_non_finite_pixels_are_ignored():
    image, variance = star_field(
        (200, 200), [50.0, 150.0], [100, 100], [50, 50]
    )
    image[90:110, 140:160] = np.nan
    variance[0:20, :] = np.inf
    found = detect(image, variance, blank((200, 200)), PLANES, FWHM, 5.0)
    assert len(found) == 1
    assert np.isfinite(found.x).all() and np.isfinite(found.snr).all()


def test_close_pair_is_one_footprint_with_two_peaks():
    image, variance = star_field(
        (160, 160), [75.0, 85.0, 30.0], [80.0, 80.0, 30.0], [80, 60, 60]
    )
    found = detect(image, variance, blank((160, 160)), PLANES, FWHM, 5.0)
    assert len(found) == 2
    index, _ = nearest(found, 75.0, 80.0)
    assert found.n_peaks[index] == 2
    # The brightest peak anchors the centroid.
    assert found.x[index] == pytest.approx(75.0, abs=1.0)
    single, _ = nearest(found, 30.0, 30.0)
    assert found.n_peaks[single] == 1


def test_labels_and_areas_are_consistent():
    image, variance = star_field(
        (200, 200), [40.0, 150.0, 100.0], [40.0, 60.0, 160.0], [20, 40, 80]
    )
    found = detect(image, variance, blank((200, 200)), PLANES, FWHM, 5.0)
    assert found.labels.dtype == np.int32
    assert found.labels.max() == len(found)
    for row in range(len(found)):
        assert (
            np.count_nonzero(found.labels == row + 1)
            == (found.footprint_area[row])
        )
        assert found.labels[found.peak_y[row], found.peak_x[row]] == row + 1
    # Brighter stars have larger footprints.
    assert np.all(np.diff(found.footprint_area[np.argsort(found.snr)]) > 0)


def test_stdev_threshold_agrees_with_pixel_stdev_on_flat_noise():
    xs, ys = [50.0, 150.0, 100.0], [50.0, 60.0, 150.0]
    image, variance = star_field((200, 200), xs, ys, [20, 30, 40])
    for kind in ("pixel_stdev", "stdev"):
        found = detect(
            image,
            variance,
            blank((200, 200)),
            PLANES,
            FWHM,
            5.0,
            threshold_type=kind,
        )
        assert len(found) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"psf_fwhm": 0.0}, "psf_fwhm"),
        ({"psf_fwhm": float("nan")}, "psf_fwhm"),
        ({"threshold": -1.0}, "threshold"),
        ({"polarity": "up"}, "polarity"),
        ({"threshold_type": "variance"}, "threshold_type"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    image = np.zeros((32, 32), dtype=np.float32)
    arguments = {"psf_fwhm": FWHM, "threshold": 5.0, **kwargs}
    psf_fwhm = arguments.pop("psf_fwhm")
    threshold = arguments.pop("threshold")
    with pytest.raises(ValueError, match=message):
        detect(
            image,
            image + 1,
            blank((32, 32)),
            PLANES,
            psf_fwhm,
            threshold,
            **arguments,
        )


def test_mismatched_shapes_raise():
    image = np.zeros((32, 32), dtype=np.float32)
    with pytest.raises(ValueError, match="one shape"):
        detect(image, image[:, :30], blank((32, 32)), PLANES, FWHM, 5.0)


def test_empty_image_gives_no_detections():
    image = np.zeros((64, 64), dtype=np.float32)
    found = detect(image, image + 1, blank((64, 64)), PLANES, FWHM, 5.0)
    assert len(found) == 0
    assert found.labels.shape == (64, 64)
    assert not found.labels.any()


def test_detection_is_deterministic():
    image, variance = star_field(
        (256, 256), [40.0, 150.0, 100.0], [40.0, 60.0, 160.0], [20, 40, 80]
    )
    image[:, 200:] *= -1

    def digest():
        found = detect(
            image, variance, blank(), PLANES, FWHM, 5.0, polarity="both"
        )
        out, _ = set_detection_planes(
            image, variance, blank(), PLANES, FWHM, SubtractConfig()
        )
        sha = hashlib.sha256()
        for array in (
            found.x,
            found.y,
            found.flux,
            found.snr,
            found.labels,
            out,
        ):
            sha.update(np.ascontiguousarray(array).tobytes())
        return sha.hexdigest()

    assert digest() == digest()


@pytest.mark.parametrize("radius", [1, 2, 3, 5, 8, 12])
def test_disk_dilation_matches_a_circular_stencil(radius):
    rng = np.random.default_rng(radius)
    flags = rng.random((90, 110)) > 0.995
    flags[0, 0] = flags[-1, -1] = flags[0, -1] = True
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    stencil = xx**2 + yy**2 <= radius**2
    expected = ndimage.binary_dilation(flags, structure=stencil)
    assert np.array_equal(dilate_disk(flags, radius), expected)
    box = np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
    expected_box = ndimage.binary_dilation(flags, structure=box)
    assert np.array_equal(dilate_box(flags, radius), expected_box)


def test_disk_rectangles_cover_the_stencil():
    assert disk_rectangles(5) == [(5, 0), (4, 3), (3, 4), (0, 5)]
    assert disk_rectangles(1) == [(1, 0), (0, 1)]


# The compiled smoothing, blocking and labelling give the bits of the
# plain scipy formulation; the references below are that formulation.


def reference_smooth(image, variance, usable, kernel):
    def separable(plane, taps):
        rows = ndimage.correlate1d(
            plane, taps, axis=0, output=np.float32, mode="constant"
        )
        return ndimage.correlate1d(
            rows, taps, axis=1, output=np.float32, mode="constant"
        )

    values = np.where(usable, image, 0.0).astype(np.float32)
    var = np.where(usable, variance, 0.0).astype(np.float32)
    return separable(values, kernel), separable(var, kernel**2)


@pytest.mark.parametrize(
    ("shape", "sigma"),
    [((64, 80), 2.0), ((300, 257), 1.9), ((17, 400), 3.3), ((5, 6), 2.0)],
)
def test_smoothing_matches_scipy_correlate1d(shape, sigma):
    rng = np.random.default_rng(shape[0])
    image = rng.normal(0.0, 10.0, shape).astype(np.float32)
    variance = rng.uniform(50.0, 150.0, shape).astype(np.float32)
    usable = rng.random(shape) > 0.1
    kernel = smoothing_kernel(sigma)
    for plane in (image, image.astype(np.float64) * (1 + 1e-7)):
        got = footprints._smooth(plane, variance, usable, kernel)
        expected = reference_smooth(plane, variance, usable, kernel)
        for a, b in zip(got, expected, strict=True):
            assert a.dtype == np.float32
            assert np.array_equal(a, b)


def test_blocking_matches_a_box_dilation():
    rng = np.random.default_rng(21)
    for shape, half, border in (((200, 150), 6, 6), ((30, 9), 4, 1)):
        usable = rng.random(shape) > 0.002
        smoothed = rng.normal(size=shape).astype(np.float32)
        expected = dilate_box(~usable, half)
        expected[:border] = expected[-border:] = True
        expected[:, :border] = expected[:, -border:] = True
        before = smoothed.copy()
        blocked = footprints._block(usable, half, border, smoothed)
        assert np.array_equal(blocked, expected)
        assert np.array_equal(smoothed, np.where(expected, 0, before))


@pytest.mark.parametrize("radius", [0, 1, 2, 5, 8])
def test_grown_labels_match_dilation_and_scipy_label(radius):
    rng = np.random.default_rng(radius + 30)
    for density in (0.002, 0.05, 0.5):
        flags = rng.random((120, 97)) < density
        if density < 0.01:
            flags = ndimage.binary_dilation(flags, iterations=2)
        grown = dilate_disk(flags, radius)
        expected, count = ndimage.label(grown, structure=np.ones((3, 3)))
        labels, area = footprints._grow_and_label(
            np.flatnonzero(flags), flags.shape, radius
        )
        assert labels.dtype == np.int32
        assert np.array_equal(labels, expected)
        assert len(area) == count
        assert np.array_equal(
            area, np.bincount(expected[grown], minlength=count + 1)[1:]
        )


def test_significances_match_the_numpy_formulation():
    rng = np.random.default_rng(22)
    smoothed = rng.normal(size=(150, 90)).astype(np.float32)
    smoothed_var = rng.uniform(0.0, 2.0, smoothed.shape).astype(np.float32)
    smoothed_var[::7] = 0.0
    noise = np.sqrt(smoothed_var)
    expected = np.zeros_like(smoothed)
    np.divide(smoothed, noise, out=expected, where=noise > 0)
    got = footprints._pixel_significance(smoothed, smoothed_var)
    assert np.array_equal(got, expected)
    blocked = rng.random(smoothed.shape) < 0.1
    mask = np.where(rng.random(smoothed.shape) < 0.1, 4, 0).astype(np.int32)
    sample = ~blocked & ((mask & 4) == 0)
    _, std = clipped_mean_std(smoothed[::2, ::2][sample[::2, ::2]])
    got = footprints._global_significance(smoothed, blocked, mask, 4)
    assert np.array_equal(got, smoothed / np.float32(std))


def test_merged_labels_keep_positive_then_shift_negative():
    rng = np.random.default_rng(23)
    positive = rng.integers(0, 4, (40, 50)).astype(np.int32)
    negative = rng.integers(0, 3, (40, 50)).astype(np.int32)
    merged = detection._merge_labels(positive, negative, 3)
    expected = np.where(
        positive > 0, positive, np.where(negative > 0, negative + 3, 0)
    )
    assert np.array_equal(merged, expected)


def test_detection_does_not_depend_on_thread_count(monkeypatch):
    image, variance = star_field(
        (400, 300),
        [40.0, 150.0, 100.0, 250.0],
        [40.0, 160.0, 330.0, 250.0],
        [20, 40, 80, 15],
    )
    image[:, 200:] *= -1
    mask = blank((400, 300))
    mask[200:205, 10:40] = PLANES.value("BAD")
    digests = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("RECREATE_THREADS", threads)
        sha = hashlib.sha256()
        for kind in ("pixel_stdev", "stdev"):
            found = detect(
                image,
                variance,
                mask,
                PLANES,
                FWHM,
                5.0,
                polarity="both",
                threshold_type=kind,
            )
            for array in (found.x, found.flux, found.labels):
                sha.update(np.ascontiguousarray(array).tobytes())
        out, _ = set_detection_planes(
            image, variance, mask, PLANES, FWHM, SubtractConfig()
        )
        sha.update(out.tobytes())
        digests.append(sha.hexdigest())
    assert digests[0] == digests[1] == digests[2]


def test_big_endian_planes_give_the_same_detections():
    image, variance = star_field(
        (200, 200), [60.0, 140.0], [100, 100], [40, 40]
    )
    image[:, 100:] *= -1
    mask = blank((200, 200))
    mask[20:30, 20:30] = PLANES.value("BAD")
    for kind in ("pixel_stdev", "stdev"):
        native = detect(
            image,
            variance,
            mask,
            PLANES,
            FWHM,
            5.0,
            polarity="both",
            threshold_type=kind,
        )
        swapped = detect(
            image.astype(">f4"),
            variance.astype(">f8"),
            mask.astype(">i4"),
            PLANES,
            FWHM,
            5.0,
            polarity="both",
            threshold_type=kind,
        )
        assert np.array_equal(native.x, swapped.x)
        assert np.array_equal(native.labels, swapped.labels)
    out, _ = set_detection_planes(
        image.astype(">f4"),
        variance,
        mask.astype(">i4"),
        PLANES,
        FWHM,
        SubtractConfig(),
    )
    expected, _ = set_detection_planes(
        image, variance, mask, PLANES, FWHM, SubtractConfig()
    )
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("negative", [False, True])
def test_local_maxima_are_the_numpy_comparisons(negative):
    # Strictly above the earlier neighbours and at least the later ones,
    # plateaus (quantised values) and NaN included, either polarity.
    rng = np.random.default_rng(21)
    field = np.round(rng.normal(0.0, 2.0, (60, 80))).astype(np.float32)
    field[10, 10:14] = np.nan
    inner = np.zeros(field.shape, dtype=bool)
    inner[1:-1, 1:-1] = True
    pixels = np.flatnonzero(inner & (rng.random(field.shape) < 0.6))
    flat = field.ravel()
    values = -flat[pixels] if negative else flat[pixels]
    expected = np.ones(len(pixels), dtype=bool)
    for dy, dx in footprints._EARLIER:
        offset = dy * field.shape[1] + dx
        earlier, later = flat[pixels + offset], flat[pixels - offset]
        if negative:
            earlier, later = -earlier, -later
        expected &= (values > earlier) & (values >= later)
    got = footprints._local_maxima(field, pixels, values, negative=negative)
    assert np.array_equal(got, expected)
    assert 0 < got.sum() < len(pixels)
