"""The engine's memory: source snapshots, recorded runs and the flag lifecycle, in a database.

    settings     one Settings object: data directory, database URL, lifecycle and schedule knobs
    db           the Store: SQLAlchemy engine, sessions, the run lock, migrations on first use
    models       the tables (their schema is owned by the Alembic migrations in migrations/)
    snapshots    ingest a source file once: validate, normalize, keep as Parquet, register
    identity     a finding's stable flag key and the fingerprint of its evidence (pure)
    lifecycle    append-only flag events, status derived from them, the lifecycle rules
    runs         record a run over the latest snapshots, commit it in one transaction
    schedule     which rules are due (cadence period, newer snapshot) and the nightly job
    households   review dates (动态管理) and the households due for re-review
    report       report.xlsx of a run: summary, overpayment to recover, flags with evidence
    cli          the `crosscheck` commands that use the store (registered on engine.cli.main)

The engine stays pure (frames in, frames out); everything here is an adapter around it.
"""
