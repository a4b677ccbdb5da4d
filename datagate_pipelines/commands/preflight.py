"""What `datagate sync|bill` checks before it launches a run.

A refusal here is one `error:` line and exit 1, with nothing launched and nothing written:
the portal must be in portals.yaml and valid, its secrets' environment variables set
(HaloPSA always; QBO when the portal exports to QBO and the command exports), and every
period between the portal's `billing_start` and the open period (this month, UTC); an
export only of a period that has ended. The runs check the same rules again (drafts.py,
finalize.py): whatever launches them, the rules hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from datagate_pipelines import DatagateError
from datagate_pipelines.billing.periods import invoice_date, month_start, period_label
from datagate_pipelines.commands.common import engine
from datagate_pipelines.config import Portal, PortalSettings


class RunRefusedError(DatagateError):
    """The command will not launch this run: it would fail, or do what was not meant."""


def check_secrets(portal: Portal, *, exports: bool = False) -> None:
    """The portal's secrets are set: HaloPSA's, and QBO's when it has a qbo section and the
    command `exports`."""
    portal.halopsa_credentials()
    if exports and portal.settings.qbo is not None:
        from datagate_pipelines.qbo.token_store import check_qbo_secrets

        check_qbo_secrets(portal, engine)


def check_periods(
    portal: PortalSettings, periods: Iterable[date], *, export: bool, today: date | None = None
) -> None:
    """Every period within billing_start … the open period; ended, when `export`."""
    today = today or datetime.now(UTC).date()
    open_period = month_start(today)
    for period in periods:
        label = period_label(period)
        if period < portal.billing_start:
            raise RunRefusedError(
                f"portal {portal.id}: billing period {label} is before billing_start "
                f"{period_label(portal.billing_start)}"
            )
        if period > open_period:
            raise RunRefusedError(
                f"portal {portal.id}: billing period {label} has not begun "
                f"(the open period is {period_label(open_period)})"
            )
        if export and invoice_date(period) > today:
            raise RunRefusedError(
                f"portal {portal.id}: billing period {label} is still open: it can be "
                f"finalized and exported from {invoice_date(period).isoformat()} "
                "(without --export, its drafts are built)"
            )
