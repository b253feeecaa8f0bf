"""crmkit's exceptions: where a row error points, and a validation error's message and report."""

from __future__ import annotations

import pytest

from crmkit.errors import (
    ConflictError,
    CrmkitError,
    NotFittedError,
    NotFoundError,
    RowError,
    ValidationError,
)


def test_row_error_names_row_and_field_it_has() -> None:
    assert str(RowError(3, "amount", "must be positive", -1)) == (
        "row 3, field 'amount': must be positive"
    )
    assert str(RowError(None, "amount", "missing")) == "field 'amount': missing"
    assert str(RowError(7, None, "duplicate id")) == "row 7: duplicate id"
    assert str(RowError(None, None, "empty file")) == "empty file"


def test_validation_error_message_shows_the_first_errors_and_counts_the_rest() -> None:
    errors = [RowError(i, "name", "is empty") for i in range(1, 13)]
    err = ValidationError("accounts", errors, shown=2)
    assert str(err) == (
        "accounts: 12 problem(s): row 1, field 'name': is empty; "
        "row 2, field 'name': is empty; and 10 more"
    )
    assert err.entity == "accounts" and err.errors == errors
    assert isinstance(err, CrmkitError) and isinstance(err, ValueError)
    assert "more" not in str(ValidationError("deals", errors[:2]))


def test_validation_error_report_lists_every_problem() -> None:
    errors = [RowError(2, "amount", "not a number", "abc"), RowError(None, None, "no rows")]
    report = ValidationError("deals", errors).report()
    assert list(report.columns) == ["row", "field", "reason", "value"]
    assert report.to_dict("records")[0] == {
        "row": 2,
        "field": "amount",
        "reason": "not a number",
        "value": "abc",
    }
    assert report["reason"].tolist() == ["not a number", "no rows"]
    assert ValidationError("deals", []).report().empty


def test_not_found_reads_as_its_message_and_the_bases_catch_it() -> None:
    assert str(NotFoundError("snapshot 4 not found")) == "snapshot 4 not found"
    assert str(NotFoundError()) == "not found"
    with pytest.raises(KeyError):
        raise NotFoundError("x")
    with pytest.raises(AttributeError):
        raise NotFittedError("fit first")
    assert issubclass(ConflictError, CrmkitError)
