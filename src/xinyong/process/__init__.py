"""Processes around the ledger: inquiries, licensing, retention purge."""
