"""Marketing-mix transforms: adstock, saturation and Fourier terms against hand values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crmkit.models.mmm.transforms import (
    fourier_terms,
    geometric_adstock,
    hill_saturation,
    logistic_saturation,
)


def test_geometric_adstock_hand_values():
    np.testing.assert_allclose(geometric_adstock([1.0, 0, 0, 0], 0.5), [1, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(geometric_adstock([1.0, 2.0, 0.0], 0.5), [1, 2.5, 1.25])
    np.testing.assert_allclose(geometric_adstock([1.0, 0, 0], 0.5, l_max=2), [1, 0.5, 0])
    x = np.array([[1.0, 10.0], [0.0, 0.0]])
    np.testing.assert_allclose(geometric_adstock(x, np.array([0.2, 0.9])), [[1, 10], [0.2, 9]])


def test_geometric_adstock_batched_decay():
    x = np.array([[1.0, 1.0], [0.0, 1.0]])
    out = geometric_adstock(x, np.array([[0.5, 0.0], [0.1, 1.0]]), l_max=3)
    assert out.shape == (2, 2, 2)
    np.testing.assert_allclose(out[0], [[1, 1], [0.5, 1]])
    np.testing.assert_allclose(out[1], [[1, 1], [0.1, 2]])


def test_saturation_hand_values():
    assert logistic_saturation(0.0, 3.0) == 0.0
    assert logistic_saturation(1.0, 1.0) == pytest.approx((1 - math.exp(-1)) / (1 + math.exp(-1)))
    assert logistic_saturation(100.0, 1.0) == pytest.approx(1.0)
    assert hill_saturation(5.0, 5.0, 1.7) == pytest.approx(0.5)
    assert hill_saturation(2.0, 1.0, 2.0) == pytest.approx(4 / 5)
    assert hill_saturation(0.0, 1.0, 2.0) == 0.0
    assert hill_saturation(3.0, 1.0, 1.0) == pytest.approx(3 / 4)


def test_fourier_terms_shape_and_values():
    f = fourier_terms(pd.to_datetime(["2025-01-01", "2025-07-02"]), 2)
    assert f.shape == (2, 4)
    ang = 2 * np.pi * 1 / 365.25
    assert f[0, 0] == pytest.approx(np.sin(ang)) and f[0, 1] == pytest.approx(np.cos(ang))
