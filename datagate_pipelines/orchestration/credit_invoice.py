"""Crediting a final invoice from the Dagster UI: the `credit_invoice` job.

It does what `datagate credit` does, through the same call (exporting/corrections.py):
every check first, then the credit note numbered, recorded and exported to HaloPSA and QBO
(applied in QBO to the invoice while it is open).
"""

from decimal import Decimal, InvalidOperation

import dagster as dg
from pydantic import Field

from datagate_pipelines import DatagateError
from datagate_pipelines.exporting.corrections import issue_credit
from datagate_pipelines.orchestration.corrections import portal_clients
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.audit import audit_context

DESCRIPTION = """Credit a final invoice, exactly as `datagate credit` does.

In the launchpad, fill in the config of the `credit` op: `portal`, `invoice` (its number),
`reason`, `credited_by` (kept in the audit trail), and either nothing more (the whole
invoice: all that remains uncredited), `lines` (line numbers: those lines), or `amount`
(before tax, spread over the lines pro rata; its tax is added). `dry_run` only shows it."""


class CreditInvoiceConfig(dg.Config):
    portal: str = Field(description="The portal id, from portals.yaml.")
    invoice: str = Field(description="The number of the final invoice to credit.")
    reason: str = Field(description="Why: kept on the credit note and in the audit trail.")
    credited_by: str = Field(description="Who credits: kept in the audit trail.")
    lines: list[int] = Field(default_factory=list, description="Only these line numbers.")
    amount: str = Field(default="", description="An amount before tax, e.g. 50.00; empty: all.")
    dry_run: bool = Field(default=False, description="Check and show it; write nothing.")


@dg.op(description="Check, number, record and export the credit note.")
def credit(
    context: dg.OpExecutionContext,
    config: CreditInvoiceConfig,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    halopsa: HaloPSAResource,
    qbo: QBOResource,
) -> None:
    try:
        try:
            amount = Decimal(config.amount) if config.amount.strip() else None
        except InvalidOperation:
            raise DatagateError(f"amount {config.amount!r} is not a number") from None
        portal = portals.portal(config.portal)
        engine = warehouse.engine()
        with (
            audit_context(run_id=context.run_id, actor=config.credited_by.strip() or None),
            portal_clients(portal, engine, halopsa, qbo, context.run_id) as (halo, books),
        ):
            outcome = issue_credit(
                engine,
                portal.settings,
                config.invoice,
                reason=config.reason,
                halo=halo,
                qbo=books,
                line_nos=config.lines,
                amount=amount,
                dry_run=config.dry_run,
            )
    except DatagateError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    note = outcome.note
    context.log.info(
        f"credit note {note.doc_number or '(dry run)'} on {note.credits}: subtotal "
        f"{note.subtotal}, tax {note.tax}, total {note.total}"
    )
    if outcome.failed:
        raise dg.Failure(
            description=f"credit note {note.doc_number} recorded, not exported: {outcome.failed}",
            metadata={"credit_note": note.doc_number},
        )


@dg.job(description=DESCRIPTION, tags={"datagate/kind": "correction"})
def credit_invoice() -> None:
    credit()
