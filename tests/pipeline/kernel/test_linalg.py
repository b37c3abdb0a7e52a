"""Condition numbers of normal matrices: never negative."""

from __future__ import annotations

import math

import numpy as np

from recreate.pipeline.kernel.linalg import condition_number


def test_condition_number_of_a_singular_normal_matrix_is_infinite():
    # Three points cannot constrain a quadratic (six terms): A^T A is
    # singular, and rounding leaves its smallest eigenvalue slightly
    # negative, which a signed ratio reports as about -1e20.
    x = np.array([-0.5, 0.1, 0.7])
    y = np.array([0.3, -0.8, 0.2])
    design = np.column_stack([np.ones(3), x, y, x * x, x * y, y * y])
    normal = design.T @ design
    assert np.linalg.eigvalsh(normal).min() < 1e-12
    assert condition_number(normal) == math.inf


def test_condition_number_of_a_regular_matrix():
    matrix = np.diag([4.0, 2.0, 0.5])
    assert condition_number(matrix) == 8.0
    rng = np.random.default_rng(2)
    design = rng.normal(size=(50, 6))
    value = condition_number(design.T @ design)
    assert 1.0 <= value < 100.0
