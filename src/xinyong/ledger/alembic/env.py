"""Alembic's environment for a PostgreSQL registry: run programmatically by
``ledger.postgres.migrate`` over the connection it hands in (never from a URL in a
config file), one transaction for the whole upgrade."""

from __future__ import annotations

from alembic import context

from xinyong.ledger.pgschema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=metadata(), transaction_per_migration=False
)
with context.begin_transaction():
    context.run_migrations()
