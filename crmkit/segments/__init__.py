"""Customer segmentation as plain DataFrame functions.

- :mod:`~crmkit.segments.rfm`: RFM scores (quintiles 1 to 5), the named RFM segments
  (rules in :data:`SEGMENT_RULES`) and CLV tiers;
- :mod:`~crmkit.segments.cohorts`: cohort retention tables by period of first purchase;
- :mod:`~crmkit.segments.rules`: rule segments (filters on account and purchase fields);
- :mod:`~crmkit.segments.storage`: saving rule segments and assigning accounts in the store;
- :mod:`~crmkit.segments.summary`: size, revenue share and trend per segment;
- :mod:`~crmkit.segments.clv_segments`: CLV draws per customer, CLV tiers, CLV per segment.
"""

from __future__ import annotations

from crmkit.segments.clv_segments import (
    customer_clv_tiers,
    customer_value,
    expected_clv,
    segment_clv,
    store_customer_value,
)
from crmkit.segments.cohorts import cohort_sizes, cohort_table
from crmkit.segments.rfm import (
    SEGMENT_RULES,
    check_segment_rules,
    clv_tiers,
    rfm_scores,
    rfm_segments,
    rules_markdown,
)
from crmkit.segments.rules import OPS, RULE_FIELDS, RuleSegment, evaluate_rule, validate_rule
from crmkit.segments.storage import (
    assign_segment,
    customer_table,
    delete_segment,
    list_segments,
    load_segment,
    save_segment,
)
from crmkit.segments.summary import segment_labels, segment_summary, segment_trend

__all__ = [
    "OPS",
    "RULE_FIELDS",
    "SEGMENT_RULES",
    "RuleSegment",
    "assign_segment",
    "check_segment_rules",
    "clv_tiers",
    "cohort_sizes",
    "cohort_table",
    "customer_clv_tiers",
    "customer_table",
    "customer_value",
    "delete_segment",
    "evaluate_rule",
    "expected_clv",
    "list_segments",
    "load_segment",
    "rfm_scores",
    "rfm_segments",
    "rules_markdown",
    "save_segment",
    "segment_clv",
    "segment_labels",
    "segment_summary",
    "segment_trend",
    "store_customer_value",
    "validate_rule",
]
