"""Exact double-entry ledger: balances and entries; the only way to change a balance."""
