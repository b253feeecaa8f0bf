"""Declarative schema of the CRM store: a spec per entity and the SQLAlchemy tables built from it.

The specs are the single source of truth for column names, types, required fields,
value constraints and references. The SQL tables, the import validator and the
widgets' edit checks all read them, so a rule is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from crmkit.errors import NotFoundError

SCHEMA_VERSION = "0005"

#: Logical column kinds and their SQL types.
KINDS = {
    "str": sa.String,
    "text": sa.Text,
    "int": sa.Integer,
    "float": sa.Float,
    "date": sa.Date,
    "datetime": sa.DateTime,
    "json": sa.Text,
    "blob": sa.LargeBinary,
}

DEAL_STATUSES = ("open", "won", "lost")
#: Forecast categories a rep puts a deal in, stored lowercase (imports accept the labels).
FORECAST_CATEGORIES = ("pipeline", "best_case", "commit", "closed", "omitted")
#: Display names of the forecast categories, as sales teams write them.
CATEGORY_LABELS = {
    "closed": "Closed",
    "commit": "Commit",
    "best_case": "Best Case",
    "pipeline": "Pipeline",
    "omitted": "Omitted",
}
#: Who a quota or a manager's forecast call is for: an owner, a team or the company ("all").
CALL_SCOPES = ("owner", "team", "company")
#: The name of the company in quotas and calls (the snapshot's group "all").
COMPANY_NAME = "all"
#: Period kinds of quotas and calls: months or quarters (as the snapshot's ``period``).
PERIODS = ("M", "Q")
#: Other CRMs' spellings of a choice, compared folded (lowercase, no spaces, "_" or "-").
#: Salesforce's ``ForecastCategory`` picklist stores Commit as "Forecast" (Salesforce Object
#: Reference, Opportunity); HubSpot's forecast category offers "Not forecasted" and "Closed
#: won" and stores them as OMIT and CLOSED (HubSpot Knowledge Base, "Set up the forecast tool").
CHOICE_ALIASES: dict[str, dict[str, str]] = {
    "forecast_category": {
        "forecast": "commit",
        "omit": "omitted",
        "notforecasted": "omitted",
        "closedwon": "closed",
    },
}
#: Statuses of a forecast snapshot: only published ones reach the apps.
SNAPSHOT_STATUSES = ("published", "draft")
#: Deal fields whose every change is written to ``deal_history``.
DEAL_TRACKED_FIELDS = ("stage", "status", "amount", "expected_close_date", "forecast_category")


@dataclass(frozen=True)
class Column:
    """One column of an entity: its kind and the rules a value must meet."""

    name: str
    kind: str
    required: bool = False
    primary_key: bool = False
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None
    references: str | None = None  # "entity.column"
    default: object = None
    autoincrement: bool = False


@dataclass(frozen=True)
class Entity:
    """A table of the store with its columns and natural key."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    versioned: bool = False  # has row_version / updated_at for optimistic concurrency
    importable: bool = True
    indexes: tuple[tuple[str, ...], ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        """Names of the columns in table order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        """Return the column called ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def required(self) -> list[str]:
        """Columns a new row must give."""
        return [c.name for c in self.columns if c.required and not c.autoincrement]


C = Column
ENTITIES: dict[str, Entity] = {}


def _entity(*args, **kwargs) -> Entity:
    """Register an entity spec."""
    e = Entity(*args, **kwargs)
    ENTITIES[e.name] = e
    return e


_entity(
    "accounts",
    (
        C("account_id", "str", required=True, primary_key=True),
        C("name", "str", required=True),
        C("segment", "str"),
        C("industry", "str"),
        C("country", "str"),
        C("owner", "str"),
        C("created_at", "datetime", required=True),
    ),
    key=("account_id",),
    versioned=True,
    indexes=(("owner",), ("segment",)),
)
_entity(
    "contacts",
    (
        C("contact_id", "str", required=True, primary_key=True),
        C("account_id", "str", required=True, references="accounts.account_id"),
        C("name", "str", required=True),
        C("email", "str"),
        C("role", "str"),
    ),
    key=("contact_id",),
    versioned=True,
    indexes=(("account_id",),),
)
_entity(
    "stages",
    (
        C("pipeline", "str", required=True, primary_key=True),
        C("stage", "str", required=True, primary_key=True),
        C("stage_order", "int", required=True, min_value=0),
        C("probability", "float", required=True, min_value=0.0, max_value=1.0),
    ),
    key=("pipeline", "stage"),
)
_entity(
    "campaigns",
    (
        C("campaign_id", "str", required=True, primary_key=True),
        C("name", "str", required=True),
        C("channel", "str", required=True),
        C("start_date", "date", required=True),
        C("end_date", "date"),
        C("budget", "float", min_value=0.0),
        C("cost", "float", min_value=0.0),
    ),
    key=("campaign_id",),
)
_entity(
    "channel_spend",
    (
        C("channel", "str", required=True, primary_key=True),
        C("week_start", "date", required=True, primary_key=True),
        C("spend", "float", required=True, min_value=0.0),
    ),
    key=("channel", "week_start"),
)
_entity(
    "deals",
    (
        C("deal_id", "str", required=True, primary_key=True),
        C("account_id", "str", references="accounts.account_id"),
        C("name", "str"),
        C("owner", "str", required=True),
        C("team", "str"),
        C("pipeline", "str", required=True, default="default"),
        C("stage", "str", required=True),
        C("status", "str", required=True, choices=DEAL_STATUSES, default="open"),
        C("amount", "float", min_value=0.0),
        C("currency", "str", default="USD"),
        C("created_at", "datetime", required=True),
        C("expected_close_date", "date"),
        C("closed_at", "datetime"),
        C("probability_override", "float", min_value=0.0, max_value=1.0),
        C("forecast_category", "str", choices=FORECAST_CATEGORIES),
        C("lost_reason", "str"),
        C("source", "str"),
        C("campaign_id", "str", references="campaigns.campaign_id"),
    ),
    key=("deal_id",),
    versioned=True,
    indexes=(("account_id",), ("owner",), ("status", "stage"), ("campaign_id",)),
)
_entity(
    "deal_history",
    (
        C("history_id", "int", primary_key=True, autoincrement=True),
        C("deal_id", "str", required=True, references="deals.deal_id"),
        C("changed_at", "datetime", required=True),
        C("changed_by", "str"),
        C("field", "str", required=True, choices=DEAL_TRACKED_FIELDS),
        C("old_value", "str"),
        C("new_value", "str"),
    ),
    key=("history_id",),
    importable=True,
    indexes=(("deal_id", "changed_at"),),
)
_entity(
    "activities",
    (
        C("activity_id", "str", required=True, primary_key=True),
        C("account_id", "str", references="accounts.account_id"),
        C("deal_id", "str", references="deals.deal_id"),
        C("type", "str", required=True),
        C("at", "datetime", required=True),
        C("owner", "str"),
        C("note", "text"),
    ),
    key=("activity_id",),
    indexes=(("deal_id",), ("account_id",)),
)
_entity(
    "orders",
    (
        C("order_id", "str", required=True, primary_key=True),
        C("account_id", "str", required=True, references="accounts.account_id"),
        C("ordered_at", "datetime", required=True),
        C("amount", "float", required=True, min_value=0.0),
        C("deal_id", "str", references="deals.deal_id"),
    ),
    key=("order_id",),
    indexes=(("account_id", "ordered_at", "amount"),),
)
_entity(
    "segment_definitions",
    (
        C("name", "str", required=True, primary_key=True),
        C("kind", "str", required=True, default="rule"),
        C("definition", "json", required=True),
        C("description", "text"),
        C("created_at", "datetime"),
    ),
    key=("name",),
)
_entity(
    "forecast_snapshots",
    (
        C("snapshot_id", "int", primary_key=True, autoincrement=True),
        C("created_at", "datetime", required=True),
        C("as_of", "date", required=True),
        C("horizon", "int", required=True, min_value=1),
        C("period", "str", required=True, choices=("M", "Q")),
        C("label", "str"),
        C("parameters", "json"),
        C("diagnostics", "json"),
        C("quantiles", "json"),
        C("draws", "blob"),
        # published: shown by the apps; draft: saved for inspection, its checks failed
        # (migration 0002 gives the column the server default 'published')
        C("status", "str", required=True, choices=SNAPSHOT_STATUSES, default="published"),
        C("reasons", "json"),
    ),
    key=("snapshot_id",),
    importable=False,
)
_entity(
    # a backtest run after its snapshot was saved (a --no-refit report's), kept beside the
    # snapshot, which is never rewritten; a refit report stores its backtest inside the
    # snapshot. One per snapshot: the first saved stands (crmkit.store.snapshots)
    "forecast_backtests",
    (
        C("snapshot_id", "int", required=True, primary_key=True),
        C("created_at", "datetime", required=True),
        C("origins", "int", required=True, min_value=1),
        C("records", "json", required=True),
    ),
    key=("snapshot_id",),
    importable=False,
)
_entity(
    "quotas",
    (
        C("scope", "str", required=True, primary_key=True, choices=CALL_SCOPES),
        C("name", "str", required=True, primary_key=True),  # "all" for the company
        C("period", "str", required=True, primary_key=True, choices=PERIODS),
        # the first day of the month or quarter
        C("period_start", "date", required=True, primary_key=True),
        C("amount", "float", required=True, min_value=0.0),
    ),
    key=("scope", "name", "period", "period_start"),
    versioned=True,
)
_entity(
    # append-only: a later call of the same (scope, name, period, period_start) supersedes an
    # earlier one; the rows are the history (crmkit.store.calls)
    "forecast_calls",
    (
        C("call_id", "int", primary_key=True, autoincrement=True),
        C("scope", "str", required=True, choices=CALL_SCOPES),
        C("name", "str", required=True),
        C("period", "str", required=True, choices=PERIODS),
        C("period_start", "date", required=True),
        C("amount", "float", required=True, min_value=0.0),
        C("author", "str", required=True),
        C("note", "text"),
        C("created_at", "datetime", required=True),
    ),
    key=("call_id",),
    indexes=(("scope", "name", "period", "period_start"),),
)
_entity(
    # units of `currency` per ONE unit of the reporting currency (Salesforce's ConversionRate):
    # amount in the reporting currency = amount / rate; a rate holds from `valid_from` until
    # the next `valid_from` of the same currency (crmkit.store.currency)
    "exchange_rates",
    (
        C("currency", "str", required=True, primary_key=True),
        C("valid_from", "date", required=True, primary_key=True),
        C("rate", "float", required=True, min_value=0.0),  # > 0: validation refuses 0
    ),
    key=("currency", "valid_from"),
)
_entity(
    "meta",
    (
        C("key", "str", required=True, primary_key=True),
        C("value", "json"),
    ),
    key=("key",),
    importable=False,
)

#: Entities in an order where every reference points to an earlier one; the ones not listed
#: (quotas, forecast_calls, ...) refer to none and load after these.
LOAD_ORDER = (
    "accounts",
    "contacts",
    "stages",
    "campaigns",
    "channel_spend",
    "exchange_rates",
    "deals",
    "deal_history",
    "activities",
    "orders",
    "segment_definitions",
)

metadata = sa.MetaData()


def _build_table(entity: Entity) -> sa.Table:
    """Build the SQLAlchemy table of one entity spec."""
    cols: list[sa.Column] = []
    for c in entity.columns:
        type_ = KINDS[c.kind]
        args: list[object] = []
        if c.references:
            ref_entity, ref_col = c.references.split(".")
            args.append(sa.ForeignKey(f"{ref_entity}.{ref_col}"))
        cols.append(
            sa.Column(
                c.name,
                type_(),
                *args,
                primary_key=c.primary_key,
                nullable=not (c.required or c.primary_key),
                autoincrement=c.autoincrement if c.primary_key else "auto",
            )
        )
    if entity.versioned:
        cols.append(sa.Column("row_version", sa.Integer, nullable=False, server_default="1"))
        cols.append(sa.Column("updated_at", sa.DateTime, nullable=True))
    table = sa.Table(entity.name, metadata, *cols)
    for idx_cols in entity.indexes:
        sa.Index(f"ix_{entity.name}_{'_'.join(idx_cols)}", *[table.c[n] for n in idx_cols])
    return table


TABLES: dict[str, sa.Table] = {name: _build_table(e) for name, e in ENTITIES.items()}


def entity(name: str) -> Entity:
    """Return the spec of the entity ``name``; NotFoundError (a KeyError) names the known ones."""
    try:
        return ENTITIES[name]
    except KeyError:
        raise NotFoundError(
            f"unknown entity {name!r}; known entities: {', '.join(sorted(ENTITIES))}"
        ) from None
