"""Typed billing errors. Row-level problems are not raised: they become rejects or holds."""

from __future__ import annotations

from datagate_pipelines import DatagateError


class BillingError(DatagateError):
    """Base class for errors raised by the billing engine."""


class BillingInputError(BillingError, ValueError):
    """An input the engine cannot bill at all: a missing column, a period that is not the
    first of a month, a period before the portal's billing start, duplicate customer ids."""


class InvoiceNumberError(BillingError):
    """An invoice number cannot be given: the DocNumber would exceed QBO's 21 characters,
    or no free number was found."""
