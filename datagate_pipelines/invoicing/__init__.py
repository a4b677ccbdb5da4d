"""Invoicing: the billing engine wired to the warehouse (drafts, finalization, queries)."""
