"""Voiding an exported invoice from the Dagster UI: the `void_invoice` job.

It does what `datagate void` does, through the same call (exporting/corrections.py): the
checks (exported, no payment in QBO at that moment), then the void in QBO and HaloPSA, the
invoice marked voided and its (product, month) pairs released for the next invoice.
"""

import dagster as dg
from pydantic import Field

from datagate_pipelines import DatagateError
from datagate_pipelines.exporting.corrections import void_invoice as void_in_targets
from datagate_pipelines.orchestration.corrections import portal_clients
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.audit import audit_context

DESCRIPTION = """Void an exported invoice that has no payment, exactly as `datagate void` does.

In the launchpad, fill in the config of the `void` op: `portal`, `invoice` (its number),
`reason` and `voided_by` (kept in the audit trail). A paid invoice is refused: credit it
instead (the credit_invoice job)."""


class VoidInvoiceConfig(dg.Config):
    portal: str = Field(description="The portal id, from portals.yaml.")
    invoice: str = Field(description="The number of the exported invoice to void.")
    reason: str = Field(description="Why: kept on the invoice and in the audit trail.")
    voided_by: str = Field(description="Who voids: kept in the audit trail.")


@dg.op(description="Check, then void in QBO and HaloPSA and release the invoice's pairs.")
def void(
    context: dg.OpExecutionContext,
    config: VoidInvoiceConfig,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    halopsa: HaloPSAResource,
    qbo: QBOResource,
) -> None:
    try:
        portal = portals.portal(config.portal)
        engine = warehouse.engine()
        with (
            audit_context(run_id=context.run_id, actor=config.voided_by.strip() or None),
            portal_clients(portal, engine, halopsa, qbo, context.run_id) as (halo, books),
        ):
            outcome = void_in_targets(
                engine, portal.settings, config.invoice, reason=config.reason, halo=halo, qbo=books
            )
    except DatagateError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    context.log.info(
        f"invoice {outcome.number} voided (QBO {outcome.qbo_id}, HaloPSA {outcome.halo_id})"
        + ("" if outcome.recorded else "; another run had recorded it")
    )


@dg.job(description=DESCRIPTION, tags={"datagate/kind": "correction"})
def void_invoice() -> None:
    void()
