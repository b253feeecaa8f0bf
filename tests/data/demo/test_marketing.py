"""The demo generator's marketing building blocks: geometric adstock and Hill saturation."""

from __future__ import annotations

import numpy as np

from crmkit.data.demo.marketing import geometric_adstock, hill_saturation


def test_adstock_and_saturation_building_blocks():
    assert np.allclose(geometric_adstock([100.0, 0.0, 0.0, 10.0], 0.5), [100, 50, 25, 22.5])
    assert np.allclose(hill_saturation([0.0, 2.0, 6.0], half=2.0, shape=2.0), [0, 0.5, 0.9])
