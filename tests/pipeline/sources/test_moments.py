"""Compiled stamp sums (adaptive moments, centroids) against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from recreate.numerics.robust import (
    pairwise_scratch,
    pairwise_sum,
    pairwise_sum_with,
)
from recreate.pipeline.sources.measure import (
    CENTROID_ITERATIONS,
    StampStack,
    gaussian_centroids,
)
from recreate.pipeline.sources.moments import _moment_step, adaptive_moments


def _numpy_step(
    values: np.ndarray, grid: np.ndarray, state: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The moment step as plain numpy array expressions (the reference)."""
    dx, dy, a, b, c = state
    det = a * b - c**2
    ux = grid[None, None, :] - dx[:, None, None]
    uy = grid[None, :, None] - dy[:, None, None]
    ia, ib, ic = (x[:, None, None] for x in (b / det, a / det, -c / det))
    weight = np.exp(-0.5 * (ia * ux**2 + 2 * ic * ux * uy + ib * uy**2))
    wi = weight * values
    total = wi.sum(axis=(1, 2))
    safe = np.where(total > 0, total, 1.0)
    mx = (wi * ux).sum(axis=(1, 2)) / safe
    my = (wi * uy).sum(axis=(1, 2)) / safe
    mxx = (wi * ux**2).sum(axis=(1, 2)) / safe - mx**2
    myy = (wi * uy**2).sum(axis=(1, 2)) / safe - my**2
    mxy = (wi * ux * uy).sum(axis=(1, 2)) / safe - mx * my
    return total, mx, my, mxx, myy, mxy


def _gaussian_stamps(n: int, half: int, seed: int) -> tuple[np.ndarray, ...]:
    """Return noisy elliptical Gaussian stamps and a weight state."""
    rng = np.random.default_rng(seed)
    grid = np.arange(-half, half + 1, dtype=np.float64)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    sigma = rng.uniform(1.2, 3.5, (n, 1, 1))
    flux = rng.uniform(50.0, 5000.0, (n, 1, 1))
    shift = rng.normal(0.0, 0.4, (2, n, 1, 1))
    values = flux * np.exp(
        -((xx - shift[0]) ** 2 + (yy - shift[1]) ** 2) / (2 * sigma**2)
    ) + rng.normal(0.0, 3.0, (n, grid.size, grid.size))
    state = np.zeros((5, n))
    state[:2] = rng.normal(0.0, 0.3, (2, n))
    state[2:4] = rng.uniform(1.0, 9.0, (2, n))
    state[4] = rng.uniform(-0.5, 0.5, n)
    return values, grid, state


@pytest.mark.parametrize(("half", "seed"), [(3, 1), (10, 2), (15, 3), (20, 4)])
def test_moment_step_is_the_numpy_formulation_bit_for_bit(
    half: int, seed: int
) -> None:
    values, grid, state = _gaussian_stamps(300, half, seed)
    step = _moment_step(values, grid, state)
    total, mx, my, mxx, myy, mxy = _numpy_step(values, grid, state)
    positive = (mxx > 0) & (myy > 0) & (mxx * myy - mxy**2 > 0)
    np.testing.assert_array_equal(step.mxx, mxx)
    np.testing.assert_array_equal(step.myy, myy)
    np.testing.assert_array_equal(step.mxy, mxy)
    np.testing.assert_array_equal(step.ok, (total > 0) & positive)
    trace = state[2] + state[3]
    gain = np.clip(trace / (trace - mxx - myy), 1.0, 3.0)
    gain = np.where(np.isfinite(gain), gain, 1.0)
    np.testing.assert_array_equal(step.dx, gain * mx)
    np.testing.assert_array_equal(step.dy, gain * my)


def test_moment_step_keeps_non_finite_weights_as_numpy_does() -> None:
    values, grid, state = _gaussian_stamps(20, 5, 9)
    state[2, :5] = 0.0  # a singular weight: division by zero, NaN sums
    state[3, :5] = 0.0
    state[4, :5] = 0.0
    with np.errstate(all="ignore"):
        step = _moment_step(values, grid, state)
        _, _, _, mxx, myy, mxy = _numpy_step(values, grid, state)
    np.testing.assert_array_equal(step.mxx, mxx)
    np.testing.assert_array_equal(step.myy, myy)
    np.testing.assert_array_equal(step.mxy, mxy)
    assert not step.ok[:5].any()
    assert step.ok[5:].all()


def test_adaptive_moments_find_a_gaussian_covariance() -> None:
    half = 15
    grid = np.arange(-half, half + 1, dtype=np.float64)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    cov = np.array([[4.0, 1.0], [1.0, 2.5]])
    inverse = np.linalg.inv(cov)
    image = 1000.0 * np.exp(
        -0.5
        * (
            inverse[0, 0] * (xx - 0.3) ** 2
            + 2 * inverse[0, 1] * (xx - 0.3) * (yy + 0.2)
            + inverse[1, 1] * (yy + 0.2) ** 2
        )
    )
    values = image[None]
    stamps = StampStack(
        values,
        np.ones_like(values),
        np.ones(values.shape, dtype=bool),
        np.array([50]),
        np.array([50]),
    )
    moments = adaptive_moments(stamps, 1.5)
    assert moments.ok[0]
    assert moments.dx[0] == pytest.approx(0.3, abs=1e-4)
    assert moments.dy[0] == pytest.approx(-0.2, abs=1e-4)
    assert moments.ixx[0] == pytest.approx(4.0, rel=1e-4)
    assert moments.iyy[0] == pytest.approx(2.5, rel=1e-4)
    assert moments.ixy[0] == pytest.approx(1.0, rel=1e-4)


def test_pairwise_sum_with_reused_scratch_is_numpy_sum() -> None:
    rng = np.random.default_rng(5)
    tasks, sums = pairwise_scratch()
    for size in (0, 1, 7, 8, 127, 128, 129, 441, 961, 5000, 100_003):
        data = rng.normal(size=size + 3) * 10.0 ** rng.integers(-3, 3)
        expected = np.sum(data[3:])
        assert pairwise_sum_with(data, 3, size, tasks, sums) == expected
        assert pairwise_sum(data, 3, size) == expected


def _numpy_centroids(
    values: np.ndarray, grid: np.ndarray, sigma: float, iterations: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted centroids as plain numpy arrays (the reference)."""
    n = values.shape[0]
    dx, dy = np.zeros(n), np.zeros(n)
    limit = float(grid[-1]) / 2.0
    for _ in range(iterations):
        ux = grid[None, None, :] - dx[:, None, None]
        uy = grid[None, :, None] - dy[:, None, None]
        weight = np.exp(-0.5 * (ux**2 + uy**2) / sigma**2) * values
        total = weight.sum(axis=(1, 2))
        good = total > 0
        safe = np.where(good, total, 1.0)
        mx = (weight * ux).sum(axis=(1, 2)) / safe
        my = (weight * uy).sum(axis=(1, 2)) / safe
        trace = (weight * (ux**2 + uy**2)).sum(axis=(1, 2)) / safe
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.clip(2 * sigma**2 / (2 * sigma**2 - trace), 1.0, 3.0)
        gain = np.where(np.isfinite(gain), gain, 1.0)
        dx = np.where(good, np.clip(dx + gain * mx, -limit, limit), dx)
        dy = np.where(good, np.clip(dy + gain * my, -limit, limit), dy)
    return dx, dy


@pytest.mark.parametrize(("half", "sigma"), [(4, 1.1), (12, 2.37), (20, 3.9)])
def test_gaussian_centroids_are_the_numpy_formulation_bit_for_bit(
    half: int, sigma: float
) -> None:
    values, grid, _ = _gaussian_stamps(200, half, int(10 * sigma))
    values[:3] = -values[:3]  # no positive flux: the peak stays put
    stamps = StampStack(
        values,
        np.ones_like(values),
        np.ones(values.shape, dtype=bool),
        np.zeros(len(values), dtype=np.int64),
        np.zeros(len(values), dtype=np.int64),
    )
    dx, dy = gaussian_centroids(stamps, sigma)
    expected = _numpy_centroids(values, grid, sigma, CENTROID_ITERATIONS)
    np.testing.assert_array_equal(dx, expected[0])
    np.testing.assert_array_equal(dy, expected[1])
    assert np.any(dx != 0.0)
