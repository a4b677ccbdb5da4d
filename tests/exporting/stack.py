"""Real finalized invoices for export tests, built through the pipeline's own functions.

A generated HaloPSA tenant in the simulator → the ingest's fetch/decode/mirror steps → the
sync → tax-rate and product-template imports → drafts → finalization. Nothing is mocked:
the invoices are exactly what the billing run would have finalized.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, select

from datagate_pipelines.apiclient.retries import RetryPolicy
from datagate_pipelines.assets.halopsa import ENTITIES
from datagate_pipelines.config import Portal, parse_portals
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.imports.product_templates import import_product_templates
from datagate_pipelines.imports.tax_rates import import_tax_rates
from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.invoicing.finalize import finalize_period
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.oauth import QBOAuthClient, RefreshingTokens
from datagate_pipelines.sync.apply import (
    sync_agreements,
    sync_customers,
    sync_product_sites,
    sync_products,
    sync_sites,
)
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse.mirror import mirror_snapshot
from datagate_pipelines.warehouse.portals import register_portal
from datagate_simulators.halopsa.generator import generate_tenant
from datagate_simulators.halopsa.testing import IN_PROCESS_URL, HaloSim, make_sim
from datagate_simulators.qbo import QBOBackend, create_app
from datagate_simulators.server import SyncASGITransport

JULY = date(2026, 7, 1)
AFTER_JULY = date(2026, 8, 2)
SEEN = datetime(2026, 7, 20, 2, 0, tzinfo=UTC)
REALM = "9130350000000001"

PORTAL_YAML = """
portals:
  - id: acme
    name: Acme Telecom
    billing_start: 2026-07
    halopsa:
      client_id_env: ACME_HALO_CLIENT_ID
      client_secret_env: ACME_HALO_CLIENT_SECRET
      tenant: acme
      authorization_server: {halo}/auth
      resource_server: {halo}/api
    invoicing: {{number_prefix: "INV-", next_number: 1001, payment_terms_days: 30, approval: auto}}
{qbo}
"""
QBO_YAML = """    qbo:
      realm_id: "{realm}"
      client_id_env: ACME_QBO_CLIENT_ID
      client_secret_env: ACME_QBO_CLIENT_SECRET
      refresh_token_env: ACME_QBO_REFRESH_TOKEN
      base_url: {qbo}
      token_url: {qbo}/oauth2/v1/tokens/bearer
      revoke_url: {qbo}/v2/oauth2/tokens/revoke
      income_account: Services
      income_accounts: {income_accounts}
"""


def portal_config(
    halo_url: str = IN_PROCESS_URL,
    qbo_url: str | None = None,
    *,
    realm: str = REALM,
    income_accounts: str = "{}",
    qbo_extra: str = "",
    income_account: str = "Services",
    purchasing: str | None = None,
) -> Portal:
    """The test portal; `qbo_extra` adds lines to its qbo section (six spaces in),
    `purchasing` is its purchasing section's body (six spaces in; "" for the defaults)."""
    qbo = (
        QBO_YAML.format(realm=realm, qbo=qbo_url, income_accounts=income_accounts).replace(
            "income_account: Services", f"income_account: {income_account}"
        )
        + qbo_extra
        if qbo_url
        else ""
    )
    registry = parse_portals(PORTAL_YAML.format(halo=halo_url, qbo=qbo + sections(purchasing)))
    assert not registry.errors, registry.errors
    return registry.get("acme")


def sections(purchasing: str | None) -> str:
    """The portal's purchasing section: none, the defaults (""), or a body six spaces in."""
    if purchasing is None:
        return ""
    return f"    purchasing:\n{purchasing}\n" if purchasing else "    purchasing: {}\n"


def halo_sim(customers: int = 12, seed: int = 3) -> HaloSim:
    sim = make_sim(client_id="acme-client", client_secret="acme-secret-value", tenant="acme")
    generate_tenant(sim.backend, customers=customers, seed=seed, as_of=JULY)
    return sim


def halo_client(sim: HaloSim, **kwargs) -> HaloPSAClient:
    """A HaloPSAClient talking to the simulator in-process, retrying without sleeping."""
    kwargs.setdefault("retry", RetryPolicy(sleep=lambda _s: None))
    kwargs.setdefault("rate_limit", None)
    return HaloPSAClient(
        "acme",
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        tenant="acme",
        authorization_server=f"{IN_PROCESS_URL}/auth",
        resource_server=f"{IN_PROCESS_URL}/api",
        transport=SyncASGITransport(sim.app),
        **kwargs,
    )


def ingest(engine: Engine, portal: Portal, client: HaloPSAClient) -> None:
    """The ingest asset's steps, without Dagster: fetch, decode, mirror each entity."""
    field = portal.settings.halopsa.datagate_field_name
    with engine.begin() as c:
        register_portal(c, portal)
        for entity in ENTITIES:
            raw = list(entity.fetch(client, field, {}))
            for mirrored in entity.decode(raw, field):
                mirror_snapshot(
                    c,
                    mirrored.table,
                    portal.id,
                    mirrored.decoded.rows,
                    seen_ids=mirrored.decoded.seen_ids,
                    seen_at=SEEN,
                )


def sync(engine: Engine, portal: Portal) -> None:
    with engine.begin() as c:
        for step in (sync_customers, sync_sites):
            step(c, portal.settings)
        sync_products(c, portal.settings, as_of=SEEN.date())
        sync_product_sites(c, portal.settings)
        sync_agreements(c, portal.settings)


def import_reference_data(engine: Engine, portal: Portal, *, skip_zips: set[str] = frozenset()):
    """Tax rates for every zip the customers and sites have (but `skip_zips`: their
    invoices go on hold), and a template per item: hardware is not taxable."""
    with engine.connect() as c:
        zips = {z for (z,) in c.execute(select(m.customers.c.zip)) if z}
        zips |= {z for (z,) in c.execute(select(m.sites.c.zip)) if z}
        item_rows = c.execute(
            select(m.items.c.halo_id, m.items.c.name, m.item_groups.c.name.label("group")).join(
                m.item_groups, m.item_groups.c.halo_id == m.items.c.item_group_id, isouter=True
            )
        ).all()
    zips = sorted({z.split("-")[0] for z in zips} - set(skip_zips))
    rates = ["zip,tax_code,jurisdiction,rate"]
    for z in zips:
        rates += [f"{z},TEL,State,0.0625", f"{z},TEL,County,0.0125"]
    templates = ["item_id,item_name,tax_code,income_account"]
    for item_id, _name, group in item_rows:
        code = "NONTAXABLE" if group in (None, "Hardware") else "TEL"
        templates.append(f"{item_id},,{code},")
    with engine.begin() as c:
        import_tax_rates(c, "\n".join(rates) + "\n")
        import_product_templates(c, portal.id, "\n".join(templates) + "\n")


def finalized_invoices(
    engine: Engine, sim: HaloSim, portal: Portal, *, skip_zips: set[str] = frozenset()
) -> list:
    """Bill and finalize July 2026 for the tenant in `sim`; the final invoices' rows."""
    with halo_client(sim) as client:
        ingest(engine, portal, client)
    sync(engine, portal)
    import_reference_data(engine, portal, skip_zips=skip_zips)
    with engine.begin() as c:
        compute_drafts(c, portal.settings, JULY)
        finalize_period(c, portal.settings, JULY, today=AFTER_JULY)
    with engine.connect() as c:
        return c.execute(
            select(m.invoices).where(m.invoices.c.status == "final").order_by(m.invoices.c.number)
        ).all()


# --- QBO ---------------------------------------------------------------------------------

QBO_URL = "http://qbo.test"
QBO_CLIENT_ID = "qbo-client"
QBO_SECRET = "qbo-secret-value"
FIRST_REFRESH_TOKEN = "RT-first-0001"


@dataclass
class QBOSim:
    backend: QBOBackend
    app: Any

    @property
    def company(self):
        return self.backend.company(REALM)

    def invoices(self) -> list[dict]:
        return self.company.records("Invoice")


def qbo_sim(**seed) -> QBOSim:
    backend = QBOBackend()
    backend.seed_company(
        REALM,
        client_id=QBO_CLIENT_ID,
        client_secret=QBO_SECRET,
        refresh_token=FIRST_REFRESH_TOKEN,
        **seed,
    )
    return QBOSim(backend, create_app(backend))


def qbo_client(sim: QBOSim, *, tokens=None, **kwargs) -> QBOClient:
    """A QBOClient on the simulator in-process; tokens kept in memory (RefreshingTokens)."""
    transport = SyncASGITransport(sim.app)
    retry = kwargs.pop("retry", RetryPolicy(sleep=lambda _s: None))
    if tokens is None:
        oauth = QBOAuthClient(
            "acme",
            client_id=QBO_CLIENT_ID,
            client_secret=QBO_SECRET,
            token_url=f"{QBO_URL}/oauth2/v1/tokens/bearer",
            transport=transport,
            retry=retry,
        )
        tokens = RefreshingTokens(oauth, FIRST_REFRESH_TOKEN)
    kwargs.setdefault("rate_limit", None)
    kwargs.setdefault("max_concurrent", None)
    return QBOClient(
        "acme",
        realm_id=REALM,
        tokens=tokens,
        base_url=QBO_URL,
        transport=transport,
        retry=retry,
        **kwargs,
    )


def finalized_with_a_credit(engine: Engine, sim: HaloSim, portal: Portal) -> tuple[list, Any]:
    """Like `finalized_invoices`, after giving one billed customer a discount larger than
    its charges in HaloPSA (a recurring line at -999.99): its invoice totals below zero,
    a credit. Returns the final invoices and the credit among them."""
    with halo_client(sim) as client:
        ingest(engine, portal, client)
    sync(engine, portal)
    with engine.connect() as c:
        customer_id = c.execute(
            select(m.products.c.customer_id).order_by(m.products.c.customer_id)
        ).first()[0]
    header = min(
        (
            r
            for r in sim.backend.table("RecurringInvoice").values()
            if r["client_id"] == customer_id
        ),
        key=lambda r: r["id"],
    )
    lines = [dict(line) for line in header["lines"]]
    lines[0]["unit_price"] = -999.99
    sim.backend.upsert("RecurringInvoice", [{"id": header["id"], "lines": lines}])
    finals = finalized_invoices(engine, sim, portal)
    credit = next(f for f in finals if f.customer_id == customer_id)
    assert credit.total < 0, credit.total
    return finals, credit


# --- purchasing ------------------------------------------------------------------------


def ingest_purchasing(engine: Engine, portal: Portal, client: HaloPSAClient, *, seen=SEEN):
    """The purchasing ingest's steps, without Dagster: suppliers (details for new or
    changed rows) and purchase orders, decoded and mirrored; (suppliers' detail reads,
    rejects) returned."""
    from datagate_pipelines.sync.halopsa_rows import decode_purchase_orders, decode_suppliers
    from datagate_pipelines.sync.purchasing import with_purchase_order_lines, with_supplier_details

    settings = portal.settings.purchasing
    with engine.begin() as c:
        register_portal(c, portal)
        raw, reads = with_supplier_details(client, c, portal.id, list(client.suppliers()), now=seen)
        suppliers = decode_suppliers(raw)
        orders, _ = with_purchase_order_lines(client, list(client.purchase_orders()))
        headers, lines = decode_purchase_orders(
            orders, quantity_field=settings.quantity_field, unit_cost_field=settings.unit_cost_field
        )
        for table, decoded in (
            (m.halo_suppliers, suppliers),
            (m.halo_purchase_orders, headers),
            (m.halo_purchase_order_lines, lines),
        ):
            mirror_snapshot(
                c, table, portal.id, decoded.rows, seen_ids=decoded.seen_ids, seen_at=seen
            )
    return reads, [*suppliers.rejects, *headers.rejects, *lines.rejects]


def set_environment(monkeypatch, engine_url: str, portals_file, halo: HaloSim | None = None):
    """The environment a `datagate` command or a Dagster resource reads for the test
    portal: portals.yaml, the warehouse, the QBO app's secrets and token key (and HaloPSA's)."""
    from datagate_pipelines.qbo.token_store import TokenCipher

    values = {
        "DATAGATE_PORTALS_FILE": str(portals_file),
        "DATAGATE_DATABASE_URL": engine_url,
        "ACME_QBO_CLIENT_ID": QBO_CLIENT_ID,
        "ACME_QBO_CLIENT_SECRET": QBO_SECRET,
        "ACME_QBO_REFRESH_TOKEN": FIRST_REFRESH_TOKEN,
        "DATAGATE_TOKEN_KEY": TokenCipher.generate_key(),
    }
    if halo is not None:
        values.update(
            ACME_HALO_CLIENT_ID=halo.client_id, ACME_HALO_CLIENT_SECRET=halo.client_secret
        )
    for name, value in values.items():
        monkeypatch.setenv(name, value)
