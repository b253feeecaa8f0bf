"""``crmkit.models.marketing_plan`` gives the planning names of the three modules behind it.

The modules have their own tests (``test_marketing_scenario.py``, ``test_marketing_budget.py``;
the forecast input in ``tests/test_forecast_marketing.py``).
"""

from __future__ import annotations

from crmkit.models import (
    marketing_budget,
    marketing_forecast_input,
    marketing_plan,
    marketing_scenario,
)


def test_every_planning_name_is_importable_from_marketing_plan() -> None:
    modules = (marketing_scenario, marketing_budget, marketing_forecast_input)
    names = [n for m in modules for n in m.__all__]
    assert sorted(names) == sorted(marketing_plan.__all__)
    for m in modules:
        for name in m.__all__:
            assert getattr(marketing_plan, name) is getattr(m, name), name
