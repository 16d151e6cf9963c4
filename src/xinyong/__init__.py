"""xinyong: a rule-of-law social-credit registry.

Public surface: the catalog, the ledger, rule packs and evaluation. Everything
else is internal.
"""

__version__ = "0.1.0"
