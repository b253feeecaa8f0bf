"""The Store: one front object that reads and writes the CRM's entities as DataFrames."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator, Mapping, Sequence

import pandas as pd
import sqlalchemy as sa

from crmkit.errors import ConflictError, CrmkitError, NotFoundError, ValidationError
from crmkit.store import aggregates, migrate, snapshots
from crmkit.store.engine import (
    busy_timeout_of,
    busy_timeout_seconds,
    create_engine,
    database_label,
    probe_sqlite_file,
    refusal_reason,
    resolve_url,
    sqlite_path,
    translate_db_error,
)
from crmkit.store.fiscal import FiscalCalendar, fiscal_calendar
from crmkit.store.frames import (
    COPY_TEXT_KINDS,
    to_copy_text,
    to_records,
    to_sqlite_rows,
    typed_frame,
    value_to_text,
)
from crmkit.store.schema import DEAL_TRACKED_FIELDS, LOAD_ORDER, TABLES, Column, Entity, entity
from crmkit.store.settings import get_setting

#: Rows sent to the database per executemany call.
CHUNK_ROWS = 50_000
#: The bookkeeping timestamp of versioned entities, as a spec for row conversion.
_UPDATED_AT = Entity("updated_at", (Column("updated_at", "datetime"),), key=("updated_at",))


class Store:
    """The CRM database: entities in and out as pandas DataFrames.

    Open it with :meth:`Store.open`. Every write is one transaction: a batch lands
    whole or not at all, and deal history is written in the same transaction.

    Parameters
    ----------
    engine
        A SQLAlchemy engine made by :func:`crmkit.store.engine.create_engine`.

    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._known_cache: dict[str, set] = {}

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        url_or_path: str | os.PathLike[str] | None = None,
        *,
        migrate_db: bool = True,
        create: bool = True,
        adopt: bool = False,
        busy_timeout: float | None = None,
    ) -> Store:
        """Open a crmkit database, creating or migrating it if needed and allowed.

        Before anything is written the database is checked, and refused with a one-line
        :class:`crmkit.errors.CrmkitError` (changing nothing) when it is not a crmkit
        database: a file that is not SQLite or is damaged, a database holding another
        program's tables, or one whose schema revision this crmkit does not know (written
        by a newer crmkit, or another program's).

        Parameters
        ----------
        url_or_path
            A SQLAlchemy URL, a SQLite file path, or None for ``$CRMKIT_DB_URL`` and then
            the embedded ``data/crmkit.db``.
        migrate_db
            Check the schema and bring it to the newest version (creating it in an empty
            database). False skips both (a read-only page that trusts an earlier open).
        create
            Whether a missing file or an empty database may be made into a crmkit database.
            True by default, so a program that names its own database gets one; ``crmkit``
            commands that only read (``summary``, ``export``, ``forecast``, ``app``,
            ``report``) pass False, so a mistyped ``--db`` is an error instead of a new,
            empty database.
        adopt
            Add crmkit's tables to a database that holds another program's tables (the
            explicit opt-in of ``crmkit init``); implies ``create``.
        busy_timeout
            Seconds to wait for another writer's lock before
            :class:`crmkit.errors.BusyError` (default: ``$CRMKIT_BUSY_TIMEOUT``, else 30).

        Returns
        -------
        Store

        Raises
        ------
        CrmkitError
            When there is no crmkit database and ``create`` is false, or the database is
            refused as above.
        BusyError
            When another writer holds the database's lock past the busy timeout.

        """
        url = resolve_url(url_or_path)
        seconds = busy_timeout_seconds(busy_timeout)
        create = create or adopt
        label = database_label(url)
        path = sqlite_path(url)
        if path is not None:
            exists, tables, revision = probe_sqlite_file(path, seconds)
            if not exists and not create:
                raise CrmkitError(
                    f"no crmkit database at {label}; create one with `crmkit demo` or `crmkit init`"
                )
        engine = create_engine(url, busy_timeout=seconds, create_dirs=create)
        store = cls(engine)
        if not migrate_db:
            return store
        try:
            if path is None:
                tables, revision = migrate.database_state(engine)
            action = migrate.check_schema(tables, revision, label=label, create=create, adopt=adopt)
            if action != migrate.OK:
                migrate.upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return store

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """Open one write transaction; it commits on success and rolls back on any error.

        Yields
        ------
        sqlalchemy.Connection

        """
        with self.engine.connect().execution_options(crmkit_write=True) as conn:
            with conn.begin():
                yield conn
        self._known_cache.clear()

    # ------------------------------------------------------------------ reading
    def read(
        self,
        name: str,
        *,
        where: Mapping[str, object] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Read an entity as a typed DataFrame.

        Parameters
        ----------
        name
            Entity name, e.g. ``"deals"``.
        where
            Equality filters ``{column: value}``; a list or set value means "one of".
        columns
            Columns to read (default: all).

        Returns
        -------
        pandas.DataFrame
            Columns in schema order; dates and datetimes as ``datetime64``.

        """
        spec = entity(name)
        table = TABLES[name]
        cols = [table.c[c] for c in columns] if columns else list(table.c)
        stmt = sa.select(*cols)
        for col, val in (where or {}).items():
            if isinstance(val, (list, tuple, set, frozenset, pd.Index, pd.Series)):
                stmt = stmt.where(table.c[col].in_(list(val)))
            else:
                stmt = stmt.where(table.c[col] == val)
        stmt = stmt.order_by(*[table.c[k] for k in spec.key])
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            names = list(result.keys())
            # Plain tuples: pandas probes SQLAlchemy Row objects slowly.
            df = pd.DataFrame.from_records([tuple(r) for r in result], columns=names)
        return typed_frame(spec, df)

    def count(self, name: str) -> int:
        """Return the number of rows of an entity."""
        entity(name)
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(TABLES[name])).scalar())

    def counts(self) -> dict[str, int]:
        """Return the row count of every entity."""
        return {name: self.count(name) for name in TABLES}

    def known_keys(self, name: str) -> set:
        """Return the primary-key values stored for an entity (tuples for composite keys)."""
        spec = entity(name)
        table = TABLES[name]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*[table.c[k] for k in spec.key])).fetchall()
        if len(spec.key) == 1:
            return {r[0] for r in rows}
        return {tuple(r) for r in rows}

    def _cached_keys(self, name: str) -> set:
        """Known keys, cached for the duration of one validation."""
        if name not in self._known_cache:
            self._known_cache[name] = self.known_keys(name)
        return self._known_cache[name]

    # ------------------------------------------------------------------ writing
    def insert(
        self,
        name: str,
        df: pd.DataFrame,
        *,
        changed_by: str = "import",
        validate: bool = True,
    ) -> int:
        """Insert a batch of rows in one transaction.

        Parameters
        ----------
        name
            Entity name.
        df
            The rows, with the entity's column names.
        changed_by
            Who is writing, recorded in the deal history.
        validate
            Check every row first; any bad row raises and nothing is written.

        Returns
        -------
        int
            Rows written.

        Raises
        ------
        ValidationError
            Listing every bad row, field and reason.

        """
        return self.insert_many({name: df}, changed_by=changed_by, validate=validate)[name]

    def insert_many(
        self,
        frames: Mapping[str, pd.DataFrame],
        *,
        changed_by: str = "import",
        validate: bool = True,
    ) -> dict[str, int]:
        """Insert several entities' rows in one transaction, references first.

        Parameters
        ----------
        frames
            ``{entity: rows}``.
        changed_by
            Who is writing, recorded in the deal history.
        validate
            Check every row of every frame first; nothing is written if any is bad.

        Returns
        -------
        dict
            Rows written per entity.

        """
        for name in frames:
            entity(name)
        order = [n for n in LOAD_ORDER if n in frames] + [n for n in frames if n not in LOAD_ORDER]
        label = ", ".join(order) or "batch"
        with self.engine.connect() as conn:
            # Rows are checked before the write lock is taken (a long check does not block
            # other writers); SQLite's data_version tells whether anyone committed meanwhile.
            seen = _data_version(conn)
            clean = self._validate_batch(order, frames) if validate else dict(frames)
            conn = conn.execution_options(crmkit_write=True)
            with self._refused_writes(label), conn.begin():  # BEGIN IMMEDIATE on SQLite
                if validate and seen is not None and _data_version(conn) != seen:
                    clean = self._recheck_batch(order, frames, label)
                written = self._write_frames(conn, order, clean, changed_by, frames)
        self._known_cache.clear()
        return written

    def _recheck_batch(
        self, order: Sequence[str], frames: Mapping[str, pd.DataFrame], label: str
    ) -> dict[str, pd.DataFrame]:
        """Check a batch again inside the write lock, after another writer committed."""
        try:
            return self._validate_batch(order, frames)
        except ValidationError as exc:
            raise ConflictError(
                f"{label}: another writer changed the database while this batch was being "
                f"checked, and now {len(exc.errors):,} problem(s) (first: {exc.errors[0]}); "
                "nothing was written; run it again to see every problem"
            ) from None

    def _write_frames(
        self,
        conn: sa.Connection,
        order: Sequence[str],
        clean: Mapping[str, pd.DataFrame],
        changed_by: str,
        frames: Mapping[str, pd.DataFrame],
    ) -> dict[str, int]:
        """Write checked frames on a connection inside its write transaction."""
        now = _now()
        written: dict[str, int] = {}
        for name in order:
            df = clean[name]
            spec = entity(name)
            # Autoincrement keys left empty are assigned by the database.
            auto = [c.name for c in spec.columns if c.autoincrement and c.name in df.columns]
            df = df.drop(columns=[c for c in auto if df[c].isna().all()])
            # Convert and send in chunks so memory stays flat for millions of rows.
            if spec.versioned:
                df = df.assign(updated_at=now)
            for start in range(0, len(df), CHUNK_ROWS):
                chunk = df.iloc[start : start + CHUNK_ROWS]
                if self.dialect == "sqlite":
                    _insert_sqlite(conn, spec, chunk)
                else:
                    _insert_pg(conn, spec, chunk)
            written[name] = len(df)
            if name == "deals" and "deal_history" not in frames and len(df):
                _insert_chunks(conn, TABLES["deal_history"], _initial_history(df, changed_by, now))
        return written

    @contextlib.contextmanager
    def _refused_writes(self, what: str) -> Iterator[None]:
        """Turn a write the database refuses (a constraint) into a one-line ConflictError.

        The message names the constraint and table, never the rows' values.
        """
        try:
            yield
        except sa.exc.IntegrityError as exc:
            reason = refusal_reason(exc)
            raise ConflictError(
                f"{what}: the database refused the write ({reason}); another writer may have "
                "stored the same rows meanwhile; nothing was written"
            ) from None

    def _validate_batch(
        self, order: Sequence[str], frames: Mapping[str, pd.DataFrame]
    ) -> dict[str, pd.DataFrame]:
        """Validate frames that are loaded together; keys of earlier frames count as known."""
        from crmkit.store.validation import validate

        pending: dict[str, set] = {}

        def known(ref: str) -> set:
            return self._cached_keys(ref) | pending.get(ref, set())

        clean: dict[str, pd.DataFrame] = {}
        errors = []
        bad_entity = None
        try:
            for name in order:
                result = validate(
                    name,
                    frames[name],
                    known_keys=known,
                    calendar=self._fiscal_calendar(name),
                    reporting_currency=self._reporting_currency(name),
                )
                if result.errors:
                    errors.extend(result.errors)
                    bad_entity = bad_entity or name
                clean[name] = result.clean
                spec = entity(name)
                keys = result.clean[list(spec.key)] if set(spec.key) <= set(result.clean) else None
                if keys is not None:
                    pending[name] = (
                        set(keys.iloc[:, 0]) if len(spec.key) == 1 else set(map(tuple, keys.values))
                    )
        finally:
            self._known_cache.clear()
        if errors:
            label = bad_entity if len(order) == 1 else ", ".join(order)
            raise ValidationError(label or "batch", errors)
        return clean

    def update(
        self,
        name: str,
        key: object,
        changes: Mapping[str, object],
        *,
        expected_version: int | None = None,
        changed_by: str = "user",
        at: dt.datetime | None = None,
    ) -> dict[str, object]:
        """Change one row, checking it was not changed by someone else meanwhile.

        Parameters
        ----------
        name
            Entity name.
        key
            Primary-key value (a tuple for composite keys).
        changes
            ``{column: new value}``.
        expected_version
            The ``row_version`` the editor saw; if the stored row has moved on, nothing
            is saved and :class:`ConflictError` is raised.
        changed_by
            Who edits, recorded in the deal history.
        at
            When the change happened (default: now).

        Returns
        -------
        dict
            The row as stored after the change.

        """
        spec = entity(name)
        kd = _key_dict(spec.key, key)
        typed = _typed_key_days(spec, pd.DataFrame([kd]))
        kd.update({k: typed[k].iloc[0] for k in typed.columns if typed[k].dtype.kind == "M"})
        frame = pd.DataFrame([{**kd, **dict(changes)}])
        if expected_version is not None:
            _refuse_unversioned(spec)
            frame["row_version"] = expected_version
        self.update_many(name, frame, changed_by=changed_by, at=at)
        row = self.read(name, where=kd)
        return row.iloc[0].to_dict()

    def update_many(
        self,
        name: str,
        changes: pd.DataFrame,
        *,
        changed_by: str = "user",
        at: dt.datetime | None = None,
    ) -> int:
        """Change many rows in one transaction.

        Parameters
        ----------
        name
            Entity name.
        changes
            Key columns plus the columns to change; an optional ``row_version`` column
            holds the versions the editor saw (rows that moved on raise ConflictError).
        changed_by
            Who edits, recorded in the deal history.
        at
            When the change happened (default: now).

        Returns
        -------
        int
            Rows changed.

        """
        from crmkit.store.validation import validate

        spec = entity(name)
        table = TABLES[name]
        missing_key = [k for k in spec.key if k not in changes.columns]
        if missing_key:
            raise ValidationError(
                name, [_row_error(None, k, "key column missing") for k in missing_key]
            )
        if changes.empty:
            return 0
        if "row_version" in changes.columns and changes["row_version"].notna().any():
            _refuse_unversioned(spec)
        unknown = [c for c in changes.columns if c not in spec.column_names and c != "row_version"]
        if unknown:
            raise ValidationError(name, [_row_error(None, c, "unknown column") for c in unknown])
        changes = _typed_key_days(spec, changes)
        keys = list(map(tuple, changes[list(spec.key)].values))
        current = self._read_keys(name, keys)
        found = set(map(tuple, current[list(spec.key)].values)) if len(current) else set()
        errors = [
            _row_error(i + 1, spec.key[0], f"no {name} row with key {k[0] if len(k) == 1 else k}")
            for i, k in enumerate(keys)
            if k not in found
        ]
        if errors:
            raise ValidationError(name, errors)
        # Validate the rows as they will be after the change, by the import rules.
        merged = current.set_index(list(spec.key)).copy()
        new_cols = [c for c in changes.columns if c not in spec.key and c != "row_version"]
        ch = changes.set_index(list(spec.key))
        for c in new_cols:
            merged[c] = merged[c].astype(object)
            merged.loc[ch.index, c] = ch[c].astype(object).values
        merged = merged.reset_index()

        def known(ref: str) -> set:
            if ref == name:  # keys are not edited here, so they cannot clash
                return set()
            if ref == "stages":
                return self._cached_keys(ref)
            # Only the referenced values that occur in the edited rows need looking up.
            values: set = set()
            for c in spec.columns:
                if c.references and c.references.split(".")[0] == ref and c.name in merged:
                    values |= set(merged[c.name].dropna())
            return self._keys_among(ref, values)

        try:
            result = validate(
                name, merged[spec.column_names], known_keys=known,
                calendar=self._fiscal_calendar(name),
                reporting_currency=self._reporting_currency(name),
            )  # fmt: skip
        finally:
            self._known_cache.clear()
        if result.errors:
            raise ValidationError(name, result.errors)
        clean = result.clean.set_index(list(spec.key)).loc[ch.index].reset_index()
        now = at or _now()
        check_versions = "row_version" in changes.columns and spec.versioned
        recs = to_records(spec, clean[list(spec.key) + new_cols])
        params = []
        for i, rec in enumerate(recs):
            p = {f"v_{c}": rec[c] for c in new_cols}
            p.update({f"k_{kc}": rec[kc] for kc in spec.key})
            if check_versions:
                v = changes["row_version"].iloc[i]
                p["expected_version"] = None if pd.isna(v) else int(v)
            params.append(p)
        values = {c: sa.bindparam(f"v_{c}") for c in new_cols}
        cond = [table.c[kc] == sa.bindparam(f"k_{kc}") for kc in spec.key]
        if spec.versioned:
            values["row_version"] = table.c.row_version + 1
            values["updated_at"] = now
            if check_versions:
                expected = sa.bindparam("expected_version", type_=sa.Integer)
                cond.append(table.c.row_version == sa.func.coalesce(expected, table.c.row_version))
        history: list[dict[str, object]] = []
        if name == "deals":
            cur_idx = current.set_index(list(spec.key))
            for k, rec in zip(keys, recs, strict=True):
                before = cur_idx.loc[k[0]]
                history.extend(_change_history(k[0], before, rec, changed_by, now))
        with self._refused_writes(name), self.transaction() as conn:
            # One statement executed for all rows; the total row count reveals a conflict.
            res = conn.execute(sa.update(table).where(*cond).values(**values), params)
            if res.rowcount != len(params):
                raise ConflictError(self._conflict_message(conn, name, keys, changes))
            _insert_chunks(conn, TABLES["deal_history"], history)
        return len(keys)

    def delete(self, name: str, keys: Sequence[object]) -> int:
        """Delete rows by primary key in one transaction (a deal takes its history with it).

        Parameters
        ----------
        name
            Entity name.
        keys
            Primary-key values (tuples for composite keys).

        Returns
        -------
        int
            Rows deleted.

        """
        spec = entity(name)
        table = TABLES[name]
        n = 0
        with self.transaction() as conn:
            for key in keys:
                kd = _key_dict(spec.key, key)
                if name == "deals":
                    conn.execute(
                        sa.delete(TABLES["deal_history"]).where(
                            TABLES["deal_history"].c.deal_id == kd["deal_id"]
                        )
                    )
                res = conn.execute(
                    sa.delete(table).where(*[table.c[c] == v for c, v in kd.items()])
                )
                n += res.rowcount
        return n

    def clear(self) -> None:
        """Delete every row of every entity (the schema stays), in one transaction."""
        names = [*(n for n in TABLES if n not in LOAD_ORDER), *reversed(LOAD_ORDER)]
        with self.transaction() as conn:
            for name in names:
                conn.execute(sa.delete(TABLES[name]))

    def _keys_among(self, name: str, values: set) -> set:
        """Return those of ``values`` that are primary keys of ``name`` (single-column keys)."""
        spec = entity(name)
        if not values:
            return set()
        col = TABLES[name].c[spec.key[0]]
        found: set = set()
        vals = list(values)
        with self.engine.connect() as conn:
            for i in range(0, len(vals), 900):
                rows = conn.execute(sa.select(col).where(col.in_(vals[i : i + 900]))).fetchall()
                found.update(r[0] for r in rows)
        return found

    def _conflict_message(
        self, conn: sa.Connection, name: str, keys: list[tuple], changes: pd.DataFrame
    ) -> str:
        """Say which edited rows moved on since they were read."""
        spec = entity(name)
        t = TABLES[name]
        stale = []
        for k, v in zip(keys, changes["row_version"], strict=True):
            if pd.isna(v):
                continue
            cond = [t.c[kc] == kv for kc, kv in zip(spec.key, k, strict=True)]
            now_v = conn.execute(sa.select(t.c.row_version).where(*cond)).scalar()
            if now_v != int(v):
                stale.append(f"{k[0] if len(k) == 1 else k} (version {int(v)} -> {now_v})")
        return (
            f"{name} {', '.join(stale) or 'rows'} changed by someone else since it was read; "
            "nothing was saved. Reload the row and edit again."
        )

    def _read_keys(self, name: str, keys: list[tuple]) -> pd.DataFrame:
        """Read the rows with the given primary keys."""
        spec = entity(name)
        if len(spec.key) == 1:
            return self.read(name, where={spec.key[0]: [k[0] for k in keys]})
        df = self.read(name)
        idx = pd.MultiIndex.from_frame(df[list(spec.key)])
        return df[idx.isin(keys)]

    # ------------------------------------------------------------------ meta
    def _fiscal_calendar(self, name: str) -> FiscalCalendar | None:
        """The fiscal calendar quotas and calls are checked against (None for other tables)."""
        return fiscal_calendar(self) if name in ("quotas", "forecast_calls") else None

    def _reporting_currency(self, name: str) -> str | None:
        """The currency deals are checked against (None for other tables)."""
        if name != "deals":
            return None
        return str(get_setting(self, "reporting_currency"))

    def get_meta(self, key: str, default: object = None) -> object:
        """Return a JSON value saved under ``key`` in the store's meta table."""
        t = TABLES["meta"]
        with self.engine.connect() as conn:
            v = conn.execute(sa.select(t.c.value).where(t.c.key == key)).scalar()
        return default if v is None else json.loads(v)

    def set_meta(self, key: str, value: object) -> None:
        """Save a JSON value under ``key`` in the store's meta table."""
        t = TABLES["meta"]
        text = json.dumps(value, default=str)
        with self._refused_writes("meta"), self.transaction() as conn:
            conn.execute(sa.delete(t).where(t.c.key == key))
            conn.execute(sa.insert(t).values(key=key, value=text))

    # ------------------------------------------------------------------ aggregates
    def purchase_summary(
        self,
        cutoff: object = None,
        *,
        time_unit: str = "W",
        start: object = None,
    ) -> pd.DataFrame:
        """Per-customer purchase summary at a cut-off, computed inside the database.

        See :func:`crmkit.store.aggregates.purchase_summary`.
        """
        return aggregates.purchase_summary(self.engine, cutoff, time_unit=time_unit, start=start)

    def pipeline_totals(self, *, period: str = "M", status: str | None = None) -> pd.DataFrame:
        """Deal counts and amounts by pipeline, stage, status and period, computed in SQL.

        See :func:`crmkit.store.aggregates.pipeline_totals`.
        """
        return aggregates.pipeline_totals(self.engine, period=period, status=status)

    # ------------------------------------------------------------------ snapshots
    def save_snapshot(self, snapshot: snapshots.Snapshot) -> int:
        """Save a forecast snapshot and return its id."""
        with self._refused_writes("forecast_snapshots"), self.transaction() as conn:
            return snapshots.save(conn, snapshot)

    def save_backtest(self, snapshot_id: int, records: list[dict], *, origins: int) -> bool:
        """Keep a backtest of a saved snapshot beside it; False if it already has one.

        See :func:`crmkit.store.snapshots.save_backtest`: the snapshot itself is never
        rewritten, and :meth:`load_snapshot` returns it with this backtest in
        ``parameters["tables"]["backtest"]``.
        """
        with self._refused_writes("forecast_backtests"), self.transaction() as conn:
            return snapshots.save_backtest(conn, snapshot_id, records, origins)

    def load_snapshot(
        self, snapshot_id: int | None = None, *, include_drafts: bool = False
    ) -> snapshots.Snapshot:
        """Load a published forecast snapshot (the newest when ``snapshot_id`` is None).

        A draft (a snapshot whose checks failed) is read only with ``include_drafts=True``;
        asked for by id without it, it raises NotFoundError giving its reasons.
        """
        with self.engine.connect() as conn:
            snap = snapshots.load(conn, snapshot_id, include_drafts=include_drafts)
        if snap is None:
            what = (
                "no forecast snapshot yet" if snapshot_id is None else f"no snapshot {snapshot_id}"
            )
            raise NotFoundError(what)
        return snap

    def list_snapshots(self, *, include_drafts: bool = False) -> pd.DataFrame:
        """List published snapshots (and drafts if asked; without draws), newest first."""
        with self.engine.connect() as conn:
            return snapshots.listing(conn, include_drafts=include_drafts)


def _now() -> dt.datetime:
    """The current time, naive UTC, to the second."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _key_dict(key_cols: Sequence[str], key: object) -> dict[str, object]:
    """Map a key value (or tuple) to its key columns."""
    values = key if isinstance(key, tuple) else (key,)
    if len(values) != len(key_cols):
        raise ValueError(f"key {key!r} does not match key columns {list(key_cols)}")
    return dict(zip(key_cols, values, strict=True))


def _typed_key_days(spec: Entity, changes: pd.DataFrame) -> pd.DataFrame:
    """Date key columns as Timestamps, as rows are read (a column with a non-date stays as is)."""
    days = [k for k in spec.key if spec.column(k).kind in ("date", "datetime")]
    if not days:
        return changes
    changes = changes.copy()
    for k in days:
        parsed = pd.to_datetime(changes[k], errors="coerce", format="ISO8601")
        if parsed.notna().all():
            changes[k] = parsed.astype("datetime64[ns]")
    return changes


def _refuse_unversioned(spec: Entity) -> None:
    """Refuse a version check on an entity whose rows carry no version."""
    if not spec.versioned:
        raise CrmkitError(
            f"{spec.name} rows have no version, so expected_version cannot be checked; "
            "edit without it"
        )


def _data_version(conn: sa.Connection) -> int | None:
    """SQLite's data_version of the connection (moves when another one commits); else None."""
    if conn.dialect.name != "sqlite":
        return None
    dbapi_conn = conn.connection.dbapi_connection
    return int(dbapi_conn.execute("PRAGMA data_version").fetchone()[0])  # type: ignore[union-attr]


def _row_error(row: int | None, field: str | None, reason: str):
    """Build a RowError."""
    from crmkit.errors import RowError

    return RowError(row, field, reason)


def _insert_chunks(conn: sa.Connection, table: sa.Table, records: list[dict]) -> None:
    """Insert records: COPY on PostgreSQL, executemany in chunks elsewhere."""
    if not records:
        return
    if conn.dialect.name == "postgresql" and len(records) > 100:
        cols = list(records[0])

        def rows(copy) -> None:
            for r in records:
                copy.write_row([r[c] for c in cols])

        _copy(conn, table, cols, rows)
        return
    for i in range(0, len(records), CHUNK_ROWS):
        conn.execute(sa.insert(table), records[i : i + CHUNK_ROWS])


def _insert_pg(conn: sa.Connection, spec: Entity, chunk: pd.DataFrame) -> None:
    """Insert a chunk on PostgreSQL as one COPY text block (row by row for blob columns)."""
    table = TABLES[spec.name]
    kinds = {c.kind for c in spec.columns if c.name in chunk.columns}
    if conn.dialect.name != "postgresql" or len(chunk) <= 100 or kinds - set(COPY_TEXT_KINDS):
        _insert_chunks(conn, table, to_records(spec, chunk))
        return
    cols, text = to_copy_text(spec, chunk)
    _copy(conn, table, cols, lambda copy: copy.write(text))


def _copy(conn: sa.Connection, table: sa.Table, cols: Sequence[str], feed) -> None:
    """Run ``COPY table (cols) FROM STDIN``, ``feed(copy)`` writing the data; errors translated."""
    dbapi = conn.dialect.loaded_dbapi
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    names = ", ".join(f'"{c}"' for c in cols)
    try:
        with cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            feed(copy)
    except dbapi.Error as exc:  # COPY bypasses SQLAlchemy's error handling
        err = translate_db_error(exc, busy_timeout_of(conn.engine), table.name)
        if err is not None:
            raise err from None
        if isinstance(exc, dbapi.IntegrityError):
            raise sa.exc.IntegrityError("COPY", None, exc, hide_parameters=True) from None
        raise


def _insert_sqlite(conn: sa.Connection, spec, chunk: pd.DataFrame) -> None:
    """Insert a chunk on SQLite with the driver's executemany and ready-made tuples."""
    cols, rows = to_sqlite_rows(spec, chunk)
    if "updated_at" in chunk.columns:
        stamp = to_sqlite_rows(_UPDATED_AT, chunk[["updated_at"]])[1]
        cols = [*cols, "updated_at"]
        rows = [(*r, s[0]) for r, s in zip(rows, stamp, strict=True)]
    names = ", ".join(f'"{c}"' for c in cols)
    marks = ", ".join("?" for _ in cols)
    conn.exec_driver_sql(f'INSERT INTO "{spec.name}" ({names}) VALUES ({marks})', rows)


def _initial_history(deals: pd.DataFrame, changed_by: str, at: dt.datetime) -> list[dict]:
    """History rows recording a new deal's tracked values (old value None)."""
    rows: list[dict] = []
    for f in DEAL_TRACKED_FIELDS:
        if f not in deals.columns:
            continue
        for deal_id, v in zip(deals["deal_id"], deals[f], strict=True):
            text = value_to_text(v)
            if text is not None:
                rows.append(
                    {
                        "deal_id": deal_id,
                        "changed_at": at,
                        "changed_by": changed_by,
                        "field": f,
                        "old_value": None,
                        "new_value": text,
                    }
                )
    return rows


def _change_history(
    deal_id: object,
    before: pd.Series,
    after: Mapping[str, object],
    changed_by: str,
    at: dt.datetime,
) -> list[dict]:
    """History rows for the tracked fields an update changes."""
    rows = []
    for f in DEAL_TRACKED_FIELDS:
        if f not in after:
            continue
        old, new = value_to_text(before[f]), value_to_text(after[f])
        if old != new:
            rows.append(
                {
                    "deal_id": deal_id,
                    "changed_at": at,
                    "changed_by": changed_by,
                    "field": f,
                    "old_value": old,
                    "new_value": new,
                }
            )
    return rows
