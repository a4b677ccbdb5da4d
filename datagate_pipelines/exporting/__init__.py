"""Exports: finalized invoices to HaloPSA and QuickBooks Online, and payments read back.

Plain Python, no Dagster. Every export is recorded in the `exports` table (one row per
invoice and target system) so that any run can be killed and repeated: nothing is exported
twice and nothing is lost.
"""
