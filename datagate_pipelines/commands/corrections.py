"""`datagate credit|void`: money already billed made right (docs/billing.md rule 7).

Both check everything first and write nothing, anywhere, when a check fails (one `error:`
line, exit 1). A credit note that was recorded but not exported (a target down) exits 3:
`datagate bill --export` of its period, or the nightly schedule, finishes it. Who acts is
`DATAGATE_OPERATOR`, else the login (the audit trail keeps it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from datagate_pipelines.commands.common import engine, expected_errors, portal_option
from datagate_pipelines.config import Portal, load_portals

EXIT_FAILED_EXPORTS = 3


class Money(click.ParamType):
    name = "amount"

    def convert(self, value: Any, param: Any, ctx: Any) -> Decimal:
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount (e.g. 50.00)", param, ctx)
        if not amount.is_finite():
            self.fail(f"{value!r} is not an amount (e.g. 50.00)", param, ctx)
        return amount


@contextmanager
def _clients(portal: Portal) -> Iterator[tuple[Any, Any, Any]]:
    """(the warehouse, a HaloPSA client, a QBO client or None): requests logged."""
    from datagate_pipelines.halopsa.client import HaloPSAClient
    from datagate_pipelines.qbo.client import QBOClient
    from datagate_pipelines.qbo.token_store import qbo_settings, token_store_for
    from datagate_pipelines.warehouse.request_log import recording

    warehouse = engine()
    with ExitStack() as stack:
        recorder = stack.enter_context(recording(warehouse))
        halo = stack.enter_context(HaloPSAClient.for_portal(portal, recorder=recorder))
        books = None
        if portal.settings.qbo is not None:
            store = token_store_for(portal, warehouse, recorder=recorder)
            books = stack.enter_context(
                QBOClient.for_portal(
                    portal.id, qbo_settings(portal), store, recorder=recorder, close_tokens=True
                )
            )
        yield warehouse, halo, books


@click.command()
@portal_option()
@click.option("--invoice", "number", required=True, help="The final invoice's number.")
@click.option(
    "--line", "lines", type=int, multiple=True, help="Only this line number (repeatable)."
)
@click.option("--amount", type=Money(), help="An amount before tax, spread over the lines.")
@click.option("--reason", required=True, help="Why (kept on the credit note and in the trail).")
@click.option("--dry-run", is_flag=True, help="Show the credit note; write and send nothing.")
@expected_errors
def credit(
    portal_id: str,
    number: str,
    lines: tuple[int, ...],
    amount: Decimal | None,
    reason: str,
    dry_run: bool,
) -> None:
    """A credit note against a final invoice — whole, chosen lines, or an amount before tax
    — numbered from the portal's sequence and exported to HaloPSA and QBO (applied there to
    the invoice while it is open)."""
    from datagate_pipelines.exporting.corrections import issue_credit

    portal = load_portals().get(portal_id)
    with _clients(portal) as (warehouse, halo, books):
        outcome = issue_credit(
            warehouse,
            portal.settings,
            number,
            reason=reason,
            halo=None if dry_run else halo,
            qbo=books,
            line_nos=lines,
            amount=amount,
            dry_run=dry_run,
        )
    note = outcome.note
    title = "would credit" if dry_run else f"credit note {note.doc_number}"
    click.echo(
        f"{title} on invoice {note.credits} (portal {portal_id}): subtotal {note.subtotal:.2f}, "
        f"tax {note.tax:.2f}, total {note.total:.2f} — {reason}"
    )
    for line in note.lines:
        # 0 - x rather than -x: a line without tax shows 0.00, not -0.00.
        click.echo(f"  line {line.line_no}: {0 - line.amount:.2f}, tax {0 - line.tax:.2f}")
    for target, why in outcome.failed.items():
        click.echo(f"export failed → {target}: {why}", err=True)
    if outcome.failed:
        raise SystemExit(EXIT_FAILED_EXPORTS)


@click.command()
@portal_option()
@click.option("--invoice", "number", required=True, help="The exported invoice's number.")
@click.option("--reason", required=True, help="Why (kept on the invoice and in the trail).")
@expected_errors
def void(portal_id: str, number: str, reason: str) -> None:
    """Void an exported invoice with no payment, in QBO and HaloPSA; its number is never
    reused, and its agreement's next invoice bills its service months again."""
    from datagate_pipelines.exporting.corrections import void_invoice

    portal = load_portals().get(portal_id)
    with _clients(portal) as (warehouse, halo, books):
        outcome = void_invoice(
            warehouse, portal.settings, number, reason=reason, halo=halo, qbo=books
        )
    click.echo(
        f"invoice {number} (portal {portal_id}) voided in QBO and HaloPSA: {reason}; its "
        "service months are billed again on the agreement's next invoice"
        + ("" if outcome.recorded else " (recorded by another run)")
    )
