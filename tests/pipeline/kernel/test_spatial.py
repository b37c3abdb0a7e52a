"""Tests of the kernel's spatial functions, solver and statistics."""

import math

import numpy as np
import pytest

from recreate.pipeline.config import KernelConfig
from recreate.pipeline.kernel import KernelBasis, SolvedKernel
from recreate.pipeline.kernel.linalg import clipped_mean_std, solve_like_eigen
from recreate.pipeline.kernel.spatial import (
    grid_terms,
    polynomial_image,
    spatial_terms,
    subtract_polynomial_and_image,
)
from recreate.pipeline.kernel.spatial_fit import CandidateCells, SpatialSystem
from recreate.pipeline.kernel.stamps import (
    KernelCandidate,
    SingleSolution,
    Status,
)

CONFIG = KernelConfig()
#: A basis of the usual shape; these tests need no particular widths.
BASIS = KernelBasis(21, (0.75, 1.5, 3.0), (4, 2, 2))


def test_background_image_follows_x_and_y():
    coefficients = np.zeros((BASIS.n_basis, 3))
    coefficients[0, 0] = 1.0
    solved = SolvedKernel(
        BASIS, coefficients, [0, 1, 0, 0, 0, 0], (0, 0, 40, 20), 1, 2, 0, 0
    )
    image = solved.background_image((20, 40), np.float64)
    np.testing.assert_allclose(image[:, 0], -1 + 1 / 40)
    np.testing.assert_allclose(image[0], (np.arange(40) - 19.5) / 20)


def test_spatial_system_is_the_stacked_normal_equations():
    rng = np.random.default_rng(9)
    bbox = (0, 0, 300, 200)
    system = SpatialSystem(BASIS, CONFIG, bbox)
    n_local = BASIS.n_basis + 1
    total_matrix = np.zeros((system.size, system.size))
    total_vector = np.zeros(system.size)
    for index in range(40):
        root = rng.normal(size=(n_local, n_local))
        matrix = root @ root.T + n_local * np.eye(n_local)
        vector = rng.normal(size=n_local)
        x, y = rng.uniform(0, 300), rng.uniform(0, 200)
        candidate = KernelCandidate(
            index, x, y, 1.0, *([np.zeros((1, 1))] * 6)
        )
        candidate.single = SingleSolution(
            np.zeros(27), 0.0, 1.0, matrix, vector
        )
        system.add(candidate)
        # Map the local unknowns (27 weights + background) to the global ones.
        p_k = spatial_terms(x, y, bbox, 1)
        p_b = spatial_terms(x, y, bbox, 2)
        mapping = np.zeros((n_local, system.size))
        mapping[0, 0] = 1.0
        for m in range(1, BASIS.n_basis):
            mapping[m, 1 + 3 * (m - 1) : 1 + 3 * m] = p_k
        mapping[BASIS.n_basis, -6:] = p_b
        total_matrix += mapping.T @ matrix @ mapping
        total_vector += mapping.T @ vector
    np.testing.assert_allclose(
        system.matrix, total_matrix, rtol=1e-12, atol=1e-9
    )
    np.testing.assert_allclose(
        system.vector, total_vector, rtol=1e-12, atol=1e-12
    )
    solution = system.solve()
    expected = np.linalg.solve(total_matrix, total_vector)
    np.testing.assert_allclose(
        solution.coefficients[0, 0], expected[0], rtol=1e-8
    )
    np.testing.assert_allclose(
        solution.coefficients[1:].ravel(),
        expected[1:-6],
        rtol=1e-7,
        atol=1e-10,
    )
    np.testing.assert_allclose(
        solution.background, expected[-6:], rtol=1e-7, atol=1e-10
    )


def test_candidate_cells_rank_by_rating_and_skip_bad():
    def make(index, x, y, rating):
        return KernelCandidate(index, x, y, rating, *([np.zeros((1, 1))] * 6))

    candidates = [
        make(0, 10.0, 10.0, 1.0),
        make(1, 20.0, 20.0, 5.0),
        make(2, 30.0, 30.0, 5.0),  # ties: the later one ranks first, as afw
        make(3, 200.0, 10.0, 2.0),
        make(4, 40.0, 40.0, 3.0),
    ]
    cells = CandidateCells(candidates, (0, 0, 256, 128), 128)
    assert [c.index for c in cells.visit(2)] == [2, 1, 3]
    candidates[2].status = Status.BAD
    assert [c.index for c in cells.visit(2)] == [1, 4, 3]


def test_solver_falls_back_to_the_eigen_pseudo_inverse():
    matrix = np.diag([2.0, 0.0, 4.0])
    np.testing.assert_allclose(
        solve_like_eigen(matrix, [2.0, 5.0, 8.0]), [1.0, 0.0, 2.0]
    )
    rng = np.random.default_rng(3)
    root = rng.normal(size=(6, 6))
    spd = root @ root.T + np.eye(6)
    rhs = rng.normal(size=6)
    np.testing.assert_allclose(
        solve_like_eigen(spd, rhs), np.linalg.solve(spd, rhs)
    )
    assert np.isnan(
        solve_like_eigen(np.full((2, 2), np.nan), [1.0, 1.0])
    ).all()


def test_clipped_statistics_ignore_outliers():
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(1.0, 0.01, 200), [1.5, 0.2, 3.0]])
    mean, std = clipped_mean_std(values)
    assert mean == pytest.approx(1.0, abs=0.003)
    assert std == pytest.approx(0.01, rel=0.2)
    assert math.isnan(clipped_mean_std([])[0])


def test_polynomial_image_matches_the_term_stack():
    from recreate.pipeline.kernel.spatial import polynomial_image

    coefficients = np.array([0.5, -1.25, 2.0, 0.75, -0.3, 1.1])
    bbox = (3, -2, 40, 30)
    expected = np.tensordot(
        coefficients, grid_terms(bbox, 2, range(30), range(40)), axes=1
    )
    np.testing.assert_allclose(
        polynomial_image(coefficients, bbox, 2, (30, 40)),
        expected,
        rtol=0,
        atol=1e-12,
    )


def test_polynomial_image_is_the_sum_of_its_terms():
    coefficients = np.array([3.0, -1.5, 0.25, 2.0, -0.75, 1.25])
    bbox = (10, -5, 70, 40)
    image = polynomial_image(coefficients, bbox, 2, (40, 70))
    ys, xs = np.mgrid[0:40, 0:70]
    terms = spatial_terms(xs, ys, bbox, 2)
    np.testing.assert_allclose(
        image, np.tensordot(coefficients, terms, 1), rtol=1e-13, atol=1e-12
    )


def test_subtracting_the_background_rounds_once_as_afw_does():
    rng = np.random.default_rng(21)
    science = rng.normal(1e4, 300.0, (300, 130)).astype(np.float32)
    matched = rng.normal(9e3, 300.0, (300, 130)).astype(np.float32)
    coefficients = rng.normal(0.0, 50.0, 6)
    bbox = (0, 0, 130, 300)
    expected = (
        science.astype(np.float64)
        - polynomial_image(coefficients, bbox, 2, science.shape)
        - matched
    ).astype(np.float32)
    out = subtract_polynomial_and_image(
        science, coefficients, bbox, 2, matched
    )
    assert out.dtype == np.float32
    assert out.tobytes() == expected.tobytes()
    with pytest.raises(ValueError, match="one shape"):
        subtract_polynomial_and_image(
            science, coefficients, bbox, 2, matched[1:]
        )


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((15,), (3,)), ((15, 15), (3, 3)), ((15, 1), (3, 6))],
)
def test_the_normal_equations_blocks_are_np_kron_bit_for_bit(a_shape, b_shape):
    from recreate.pipeline.kernel.spatial_fit import _kron

    rng = np.random.default_rng(len(a_shape) + b_shape[-1])
    a, b = rng.normal(size=a_shape), rng.normal(size=b_shape)
    assert _kron(a, b).tobytes() == np.kron(a, b).tobytes()
