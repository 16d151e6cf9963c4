"""The audit chain: who read or decided what about whom, hash-chained."""

from xinyong.audit.chain import AuditChain, AuditEntry, ChainReport, audit_path

__all__ = ["AuditChain", "AuditEntry", "ChainReport", "audit_path"]
