"""Rule segments: filters on account and purchase fields, written as JSON-able data.

A rule is either one condition or a group of rules::

    {"field": "industry", "op": "==", "value": "Retail"}          # a condition
    {"all": [rule, ...]}     # every rule holds (AND)
    {"any": [rule, ...]}     # at least one rule holds (OR)
    {"not": rule}            # the rule does not hold

Operators (:data:`OPS`): ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in`` and
``not_in`` (value: a list), ``between`` (value: ``[low, high]``, both inclusive),
``contains`` and ``starts_with`` (text; case-sensitive), ``is_null`` and ``not_null``
(no value). Dates are given as ISO strings (``"2024-01-31"``).

Missing values follow SQL: a condition other than ``is_null`` on a missing value is
false (so ``{"field": "industry", "op": "!=", "value": "Retail"}`` leaves out accounts
without an industry; ``{"not": {... "==" "Retail"}}`` keeps them).
"""

from __future__ import annotations

import datetime as dt
import json
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from crmkit.errors import RowError, ValidationError
from crmkit.store.schema import entity

#: Operators a condition may use, with what their value must be.
OPS: dict[str, str] = {
    "==": "scalar",
    "!=": "scalar",
    "<": "scalar",
    "<=": "scalar",
    ">": "scalar",
    ">=": "scalar",
    "in": "list",
    "not_in": "list",
    "between": "pair",
    "contains": "text",
    "starts_with": "text",
    "is_null": "none",
    "not_null": "none",
}
_GROUPS = ("all", "any", "not")
_ORDERED = {"<", "<=", ">", ">=", "between"}


def _field_kinds() -> dict[str, str]:
    """Kinds of the fields a saved rule may name: accounts, purchase summary, RFM, CLV."""
    kinds = {c.name: c.kind for c in entity("accounts").columns}
    kinds.update(
        customer_id="str",
        first_purchase="datetime",
        last_purchase="datetime",
        frequency="int",
        recency="float",
        T="float",
        monetary_value="float",
        n_orders="int",
        revenue="float",
        recency_days="int",
        purchases="int",
        monetary="float",
        r_score="int",
        f_score="int",
        m_score="int",
        rfm_code="str",
        rfm_score="int",
        rfm_segment="str",
        clv="float",
        clv_tier="str",
    )
    return kinds


#: Field name -> kind (``str``, ``int``, ``float``, ``datetime``, ...) of every field a
#: rule may use when validated without a DataFrame: the accounts columns, the purchase
#: summary, the RFM scores and segment, and CLV with its tier.
RULE_FIELDS: dict[str, str] = _field_kinds()


def _kind_of_dtype(s: pd.Series) -> str:
    """Rule kind of a DataFrame column."""
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_numeric_dtype(s):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    return "str"


def _conditions(rule: object, path: str = "rule") -> Iterable[tuple[str, object]]:
    """Yield (path, node) for every node of a rule, depth first."""
    yield path, rule
    if isinstance(rule, Mapping):
        for g in ("all", "any"):
            if g in rule and isinstance(rule[g], list):
                for i, sub in enumerate(rule[g]):
                    yield from _conditions(sub, f"{path}.{g}[{i}]")
        if "not" in rule:
            yield from _conditions(rule["not"], f"{path}.not")


def _is_number(v: object) -> bool:
    """Tell whether ``v`` is a real number (not a boolean)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _value_error(kind: str, v: object) -> str | None:
    """Why ``v`` cannot be compared with a field of ``kind`` (None when it can)."""
    if v is None:
        return "value is missing"
    if kind in ("int", "float"):
        return None if _is_number(v) else "needs a number"
    if kind in ("date", "datetime"):
        if isinstance(v, (dt.date, pd.Timestamp)):
            return None
        if isinstance(v, str):
            try:
                pd.Timestamp(v)
            except ValueError:
                return "is not a date (use YYYY-MM-DD)"
            return None
        return "needs a date (YYYY-MM-DD)"
    if kind == "bool":
        return None if isinstance(v, (bool, np.bool_)) else "needs true or false"
    return None if isinstance(v, str) else "needs text"


def rule_errors(rule: object, fields: Mapping[str, str] | None = None) -> list[RowError]:
    """List every problem of a rule; empty when it is valid.

    Parameters
    ----------
    rule
        The rule (see the module docs).
    fields
        Field name -> kind the rule may use (default :data:`RULE_FIELDS`).

    Returns
    -------
    list of RowError
        ``row`` is the condition's number (1-based, depth first), ``field`` the field
        it names (or ``"op"``/``"all"``...), ``reason`` what is wrong and where.

    """
    fields = RULE_FIELDS if fields is None else fields
    errors: list[RowError] = []
    n = 0
    for path, node in _conditions(rule):
        if not isinstance(node, Mapping):
            errors.append(RowError(None, None, f"{path}: a rule must be an object", node))
            continue
        groups = [g for g in _GROUPS if g in node]
        if groups:
            extra = sorted(set(node) - {groups[0]})
            if len(groups) > 1 or extra:
                errors.append(
                    RowError(None, groups[0], f"{path}: a group has exactly one key", sorted(node))
                )
            g = groups[0]
            if g in ("all", "any") and (not isinstance(node[g], list) or not node[g]):
                errors.append(RowError(None, g, f"{path}: needs a non-empty list of rules"))
            continue
        n += 1
        unknown_keys = sorted(set(node) - {"field", "op", "value"})
        if unknown_keys:
            errors.append(
                RowError(n, None, f"{path}: unknown key(s) {unknown_keys}; use field, op, value")
            )
        name, op = node.get("field"), node.get("op")
        if name is None or op is None:
            errors.append(RowError(n, name, f"{path}: a condition needs 'field' and 'op'"))
            continue
        if name not in fields:
            errors.append(
                RowError(n, str(name), f"{path}: unknown field; known: {', '.join(sorted(fields))}")
            )
        if op not in OPS:
            errors.append(
                RowError(n, str(name), f"{path}: unknown op {op!r}; known: {', '.join(OPS)}", op)
            )
            continue
        if name not in fields:
            continue
        kind, shape, value = fields[name], OPS[op], node.get("value")
        where = f"{path}: op {op!r}"
        if shape == "none":
            if "value" in node and value is not None:
                errors.append(RowError(n, name, f"{where} takes no value", value))
            continue
        if shape == "list":
            if not isinstance(value, list) or not value:
                errors.append(RowError(n, name, f"{where} needs a non-empty list", value))
                continue
            items = value
        elif shape == "pair":
            if not isinstance(value, list) or len(value) != 2:
                errors.append(RowError(n, name, f"{where} needs [low, high]", value))
                continue
            items = value
        elif shape == "text":
            if kind not in ("str", "text"):
                errors.append(RowError(n, name, f"{where} needs a text field, not {kind}"))
            elif not isinstance(value, str):
                errors.append(RowError(n, name, f"{where} needs text", value))
            continue
        else:
            items = [value]
        if op in _ORDERED and kind == "bool":
            errors.append(RowError(n, name, f"{where} cannot order true/false values"))
            continue
        for v in items:
            why = _value_error(kind, v)
            if why:
                errors.append(RowError(n, name, f"{where}: value {why}", v))
    return errors


def validate_rule(rule: object, fields: Mapping[str, str] | Iterable[str] | None = None) -> None:
    """Check a rule, raising one error that lists every problem.

    Parameters
    ----------
    rule
        The rule (see the module docs).
    fields
        Field name -> kind, or a DataFrame's columns (kinds then taken as text), that
        the rule may use. Default :data:`RULE_FIELDS`.

    Raises
    ------
    ValidationError
        Naming each bad condition's number, its field and the reason.

    """
    if fields is not None and not isinstance(fields, Mapping):
        fields = dict.fromkeys(fields, "str")
    errors = rule_errors(rule, fields)
    if errors:
        raise ValidationError("segment rule", errors)


def _coerce(kind: str, v: object) -> object:
    """Convert a rule value to what a column of ``kind`` compares with."""
    if kind == "datetime" and v is not None:
        return pd.Timestamp(v)
    return v


def _condition_mask(df: pd.DataFrame, node: Mapping[str, Any]) -> np.ndarray:
    """Boolean mask of the rows meeting one condition (missing values never match)."""
    s = df[node["field"]]
    op = node["op"]
    notna = s.notna().to_numpy()
    if op == "is_null":
        return ~notna
    if op == "not_null":
        return notna
    kind = _kind_of_dtype(s)
    v = node.get("value")
    if op in ("in", "not_in"):
        vals = [_coerce(kind, x) for x in v]
        hit = s.isin(vals).to_numpy()
        return notna & (hit if op == "in" else ~hit)
    if op == "between":
        lo, hi = (_coerce(kind, x) for x in v)
        res = (s >= lo) & (s <= hi)
    elif op == "contains":
        res = s.astype(str).str.contains(v, regex=False)
    elif op == "starts_with":
        res = s.astype(str).str.startswith(v)
    else:
        x = _coerce(kind, v)
        res = {
            "==": s.__eq__,
            "!=": s.__ne__,
            "<": s.__lt__,
            "<=": s.__le__,
            ">": s.__gt__,
            ">=": s.__ge__,
        }[op](x)
    return notna & res.fillna(False).to_numpy(dtype=bool)


def _mask(df: pd.DataFrame, rule: Mapping[str, Any]) -> np.ndarray:
    """Boolean mask of a (validated) rule."""
    if "all" in rule:
        out = np.ones(len(df), dtype=bool)
        for sub in rule["all"]:
            out &= _mask(df, sub)
        return out
    if "any" in rule:
        out = np.zeros(len(df), dtype=bool)
        for sub in rule["any"]:
            out |= _mask(df, sub)
        return out
    if "not" in rule:
        return ~_mask(df, rule["not"])
    return _condition_mask(df, rule)


def evaluate_rule(rule: Mapping[str, Any], df: pd.DataFrame) -> pd.Series:
    """Return which rows of ``df`` a rule selects.

    Parameters
    ----------
    rule
        The rule (see the module docs); it is validated against ``df``'s columns and
        their types first.
    df
        One row per customer, e.g. :func:`crmkit.segments.customer_table`.

    Returns
    -------
    pandas.Series
        Boolean, same index as ``df``.

    Raises
    ------
    ValidationError
        When the rule names a column ``df`` lacks, an unknown operator, or a value of
        the wrong type.

    """
    kinds = {c: _kind_of_dtype(df[c]) for c in df.columns}
    errors = rule_errors(rule, kinds)
    if errors:
        raise ValidationError("segment rule", errors)
    return pd.Series(_mask(df, rule), index=df.index, name="selected")


def _json_default(v: object) -> object:
    """Serialise dates and numpy scalars inside a rule."""
    if isinstance(v, (dt.date, pd.Timestamp)):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"cannot write {type(v).__name__} into a rule")


@dataclass
class RuleSegment:
    """A named segment defined by a rule on customer fields.

    Parameters
    ----------
    name
        Segment name (the key in the store's ``segment_definitions``).
    rule
        The rule (see :mod:`crmkit.segments.rules`).
    description
        Free text shown to users.

    """

    name: str
    rule: dict[str, Any]
    description: str | None = None
    kind: str = field(default="rule")

    def validate(self, fields: Mapping[str, str] | Iterable[str] | None = None) -> RuleSegment:
        """Check the name and the rule (against ``fields``, default :data:`RULE_FIELDS`)."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError("segment rule", [RowError(None, "name", "needs a name")])
        validate_rule(self.rule, fields)
        return self

    def mask(self, df: pd.DataFrame) -> pd.Series:
        """Return which rows of ``df`` are in the segment (see :func:`evaluate_rule`)."""
        return evaluate_rule(self.rule, df)

    def select(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return the rows of ``df`` in the segment."""
        return df[self.mask(df).to_numpy()]

    def to_json(self) -> str:
        """Return the rule as JSON text, as saved in ``segment_definitions.definition``."""
        return json.dumps(self.rule, default=_json_default)

    @classmethod
    def from_json(cls, name: str, text: str, description: str | None = None) -> RuleSegment:
        """Rebuild a segment from its saved JSON rule."""
        return cls(name=name, rule=json.loads(text), description=description)
