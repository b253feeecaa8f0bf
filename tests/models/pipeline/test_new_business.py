"""The new-business model: monthly arrivals and the timing of their wins."""

from __future__ import annotations

import numpy as np

from crmkit.models.pipeline.data import deal_frame
from crmkit.models.pipeline.new_business import NewBusinessModel, monthly_arrivals

AS_OF = "2024-04-30"


def test_new_business_arrivals_and_win_timing(sim) -> None:
    deals = deal_frame(sim["deals"], sim["accounts"])
    nb = NewBusinessModel(method="map", draws=200, chains=1).fit(
        deals, sim["deal_history"], as_of=AS_OF
    )
    counts = monthly_arrivals(deals, AS_OF)
    mu, _alpha = nb.arrival_means(2024 * 12 + 4, 3, 400)
    assert abs(np.median(mu) - counts.mean()) < 0.25 * counts.mean()
    cdf = nb.win_cdf(2024 * 12 + 4, 6, 200)
    assert np.all(np.diff(cdf, axis=2) >= -1e-12)
    assert np.all(cdf[:, 1, 0] == 0)  # a deal created in month 1 cannot be won in month 0
    # the simulator never closes a deal in its creation month
    assert cdf[:, 0, 0].mean() < 0.05
    assert len(nb.templates_) > 0
