"""Amounts, shares and chances are formatted for people, never rounding to a certainty."""

from __future__ import annotations

from crmkit.apps.section_html import format_chance, format_share
from crmkit.plots.format import format_amount


def test_formatting() -> None:
    assert format_amount(1234567.4) == "1,234,567"
    assert format_amount(float("nan")) == "–"
    assert format_share(0.456) == "46%"


def test_format_chance_never_rounds_to_a_certainty() -> None:
    assert format_chance(0.9975) == ">99%" and format_chance(1.0) == "100%"
    assert format_chance(0.003) == "<1%" and format_chance(0.0) == "0%"
    assert format_chance(0.456) == "46%" and format_chance(None) == "–"


def test_headline_names_the_currency_code_of_the_amounts() -> None:
    from crmkit.apps import dashboard as db
    from crmkit.apps.section_html import headline_html
    from tests.snapshot_factory import make_fake_snapshot

    snap = make_fake_snapshot()
    snap.parameters["currency"] = "EUR"
    flt = db.Filter.from_mapping({})
    markup = headline_html(db.headline(snap, flt), flt, db.snapshot_currency(snap))
    assert "<h3>Revenue over the horizon in EUR — whole company</h3>" in markup
    assert 'data-currency="EUR"' in markup
    del snap.parameters["currency"]  # a snapshot saved before currencies: no code claimed
    assert db.snapshot_currency(snap) is None
    older = headline_html(db.headline(snap, flt), flt, db.snapshot_currency(snap))
    assert "<h3>Revenue over the horizon — whole company</h3>" in older
