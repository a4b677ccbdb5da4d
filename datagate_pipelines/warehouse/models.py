"""The warehouse schema: every table of the domain, in SQLAlchemy Core.

Three layers:
- HaloPSA mirror tables (`halo_*`, `contracts`, `items`, `item_groups`, recurring invoices,
  suppliers and purchase orders): what HaloPSA said, upserted by the ingest assets. Records that vanish get `deleted_at`.
- Domain tables (`customers`, `sites`, `products`, `agreements`, imports, `invoices`, the
  billing ledger, `exports`, `purchasing_exports`): what we bill and send.
- Operations (`api_requests`, `rejects`, `sync_runs`, `sync_entities`, `force_sync_requests`,
  `qbo_tokens`).
- Review (`approvals`, `invoice_holds`) and the append-only `audit_events`.

Money invariants live in unique constraints, so a bug or a re-run can never bill or export
twice: one ledger row per (portal, product, service month); one invoice number per portal;
one export per (invoice, target system). Schema changes go through Alembic (migrations/).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from datagate_pipelines.warehouse.types import Money, Quantity, Rate, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

PORTAL_ID = String(64)


def _portal() -> Column:
    return Column("portal_id", PORTAL_ID, ForeignKey("portals.id"), nullable=False)


def _seen() -> list[Column]:
    """When a mirrored HaloPSA record was first seen, last written and vanished, and the hash
    of its content.

    A listing writes only the records whose content hash changed (warehouse/mirror.py), so
    `last_seen_at` is when the record last arrived new or changed; when each entity was last
    read is in `sync_entities`.
    """
    return [
        Column("raw", JSON, nullable=False),
        Column("first_seen_at", UTCDateTime(), nullable=False),
        Column("last_seen_at", UTCDateTime(), nullable=False),
        Column("deleted_at", UTCDateTime()),
        Column("content_hash", String(64)),
    ]


portals = Table(
    "portals",
    metadata,
    Column("id", PORTAL_ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("registered_at", UTCDateTime(), nullable=False),
    Column("removed_at", UTCDateTime()),
    # The next invoice number: starts at portals.yaml's next_number and only ever grows,
    # so a number is never reused, even when an export later fails.
    Column("next_invoice_number", BigInteger, nullable=False),
    Column("last_successful_sync_at", UTCDateTime()),
)

# --- HaloPSA mirror -------------------------------------------------------------------

halo_clients = Table(
    "halo_clients",
    metadata,
    _portal(),
    Column("halo_id", BigInteger, nullable=False),
    Column("name", String(300), nullable=False),
    Column("inactive", Boolean, nullable=False),
    Column("opted_in", Boolean, nullable=False),
    Column("main_site_id", BigInteger),
    Column("start_balance", Money()),
    Column("start_date", Date),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

halo_sites = Table(
    "halo_sites",
    metadata,
    _portal(),
    Column("halo_id", BigInteger, nullable=False),
    Column("client_id", BigInteger, nullable=False),
    Column("name", String(300), nullable=False),
    Column("postcode", String(32)),
    Column("address", Text),
    Column("inactive", Boolean, nullable=False),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

contracts = Table(
    "contracts",
    metadata,
    _portal(),
    Column("halo_id", BigInteger, nullable=False),
    Column("client_id", BigInteger, nullable=False),
    Column("ref", String(200)),
    Column("contract_type_id", BigInteger),
    Column("contract_type_name", String(200)),
    Column("site_id", BigInteger),
    Column("start_date", Date),
    Column("end_date", Date),
    Column("active", Boolean, nullable=False),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

item_groups = Table(
    "item_groups",
    metadata,
    _portal(),
    # HaloPSA Asset Groups flagged "Use for Items": what an item's assetgroup_id points to.
    Column("halo_id", BigInteger, nullable=False),
    Column("name", String(300), nullable=False),
    # The group's nominal (GL) codes, for its items' sales and purchases.
    Column("nominal_code", String(100)),
    Column("purchase_nominal_code", String(100)),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

items = Table(
    "items",
    metadata,
    _portal(),
    Column("halo_id", BigInteger, nullable=False),
    Column("name", String(300), nullable=False),
    Column("item_group_id", BigInteger),
    Column("halo_tax_id", BigInteger),
    Column("is_recurring", Boolean, nullable=False),
    Column("base_price", Quantity()),
    Column("nominal_code", String(100)),
    Column("purchase_nominal_code", String(100)),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

halo_taxes = Table(
    "halo_taxes",
    metadata,
    _portal(),
    Column("halo_id", BigInteger, nullable=False),
    Column("name", String(300), nullable=False),
    Column("code", String(100)),
    Column("rate_percent", Rate()),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

recurring_invoices = Table(
    "recurring_invoices",
    metadata,
    _portal(),
    # Recurring-invoice templates have negative ids in HaloPSA.
    Column("halo_id", BigInteger, nullable=False),
    Column("client_id", BigInteger, nullable=False),
    Column("site_id", BigInteger),
    Column("contract_id", BigInteger),
    Column("period", Integer),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

recurring_invoice_lines = Table(
    "recurring_invoice_lines",
    metadata,
    _portal(),
    Column("halo_id", BigInteger, nullable=False),
    Column("recurring_invoice_id", BigInteger, nullable=False),
    Column("client_id", BigInteger, nullable=False),
    Column("item_id", BigInteger),
    Column("description", String(1000)),
    Column("qty", Quantity(), nullable=False),
    Column("unit_price", Quantity(), nullable=False),
    Column("halo_tax_code", String(32)),
    Column("contract_id", BigInteger),
    Column("site_id", BigInteger),
    Column("start_date", Date),
    Column("end_date", Date),
    Column("is_inactive", Boolean, nullable=False),
    Column("period", Integer),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

halo_suppliers = Table(
    "halo_suppliers",
    metadata,
    _portal(),
    Column("halo_id", BigInteger, nullable=False),
    Column("name", String(300), nullable=False),
    Column("inactive", Boolean, nullable=False),
    # Where the supplier's id in the accounting package is kept (the QBO vendor id).
    Column("accounts_id", String(100)),
    Column("email", String(300)),
    Column("phone", String(100)),
    Column("address", Text),
    Column("currency_code", Integer),
    # List rows carry no change stamp: the hash of the list row decides whether the
    # supplier's details are read again (docs/halopsa-api.md §A1).
    Column("list_hash", String(64), nullable=False),
    Column("detail_read_at", UTCDateTime()),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

halo_purchase_orders = Table(
    "halo_purchase_orders",
    metadata,
    _portal(),
    Column("halo_id", BigInteger, nullable=False),
    Column("po_ref", String(100)),
    Column("supplier_id", BigInteger, nullable=False),
    Column("status", Integer),
    Column("goodsin_status", Integer),
    Column("order_date", Date),
    Column("due_date", Date),
    Column("currency_code", Integer),
    Column("total", Money()),
    # The supplier invoice linked to the PO in HaloPSA (its number and date), if any.
    Column("supplier_invoice", String(100)),
    Column("supplier_invoice_date", Date),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

halo_purchase_order_lines = Table(
    "halo_purchase_order_lines",
    metadata,
    _portal(),
    Column("halo_id", BigInteger, nullable=False),
    Column("purchase_order_id", BigInteger, nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("item_id", BigInteger),
    Column("description", String(1000)),
    Column("qty", Quantity(), nullable=False),
    Column("unit_cost", Quantity(), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("nominal_code", String(100)),
    *_seen(),
    PrimaryKeyConstraint("portal_id", "halo_id"),
)

# --- Domain ---------------------------------------------------------------------------

customers = Table(
    "customers",
    metadata,
    _portal(),
    Column("halo_client_id", BigInteger, nullable=False),
    Column("name", String(300), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("main_site_id", BigInteger),
    Column("address", Text),
    Column("zip", String(32)),
    # Set from the portal setting when the customer is first created, then kept.
    Column("use_site_zip_tax", Boolean, nullable=False),
    Column("opening_balance", Money()),
    Column("opening_balance_date", Date),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("portal_id", "halo_client_id"),
)

sites = Table(
    "sites",
    metadata,
    _portal(),
    Column("halo_site_id", BigInteger, nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("name", String(300), nullable=False),
    Column("address", Text),
    Column("zip", String(32)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("portal_id", "halo_site_id"),
)

products = Table(
    "products",
    metadata,
    _portal(),
    # One product per HaloPSA recurring-invoice line that passed the portal's filters.
    Column("product_id", String(64), nullable=False),
    Column("source_line_id", BigInteger, nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("site_id", BigInteger),
    Column("contract_id", BigInteger),
    Column("item_id", BigInteger),
    Column("description", String(1000), nullable=False),
    Column("qty", Quantity(), nullable=False),
    Column("unit_price", Quantity(), nullable=False),
    # No tax code here: billing reads it from the item's product template, so a template
    # import takes effect on the next billing run (invoicing/inputs.py).
    Column("start_date", Date, nullable=False),
    Column("end_date", Date),
    Column("billing_cycle", String(32), nullable=False),
    # Why an end date was set by the sync (line inactive, line gone) rather than by HaloPSA.
    Column("ended_reason", String(200)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("portal_id", "product_id"),
)

product_sites = Table(
    "product_sites",
    metadata,
    _portal(),
    Column("product_id", String(64), nullable=False),
    Column("site_id", BigInteger, nullable=False),
    PrimaryKeyConstraint("portal_id", "product_id"),
)

agreements = Table(
    "agreements",
    metadata,
    _portal(),
    Column("agreement_key", String(100), nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("contract_id", BigInteger),
    # The HaloPSA contract invoices of this agreement are exported against (docs/billing.md).
    Column("halo_export_contract_id", BigInteger),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("portal_id", "agreement_key"),
    CheckConstraint("kind IN ('default', 'contract', 'no_contract')", name="kind"),
)

tax_rates = Table(
    "tax_rates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("zip", String(32), nullable=False),
    Column("tax_code", String(64), nullable=False),
    Column("jurisdiction", String(200), nullable=False),
    Column("rate", Rate(), nullable=False),
    Column("imported_at", UTCDateTime(), nullable=False),
    UniqueConstraint("zip", "tax_code", "jurisdiction"),
)

product_templates = Table(
    "product_templates",
    metadata,
    _portal(),
    Column("item_id", BigInteger, nullable=False),
    Column("item_name", String(300)),
    Column("tax_code", String(64)),
    Column("income_account", String(200)),
    Column("imported_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("portal_id", "item_id"),
)

usage_batches = Table(
    "usage_batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _portal(),
    Column("period", Date, nullable=False),
    # Of the batch's normalised rows, whatever the file was called (imports/usage.py).
    Column("fingerprint", String(64), nullable=False),
    Column("source", String(500), nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("total", Money(), nullable=False),
    Column("imported_by", String(200), nullable=False),
    Column("imported_at", UTCDateTime(), nullable=False),
    # A removed batch stays listed; its charges are deleted.
    Column("removed_by", String(200)),
    Column("removed_at", UTCDateTime()),
    # The same charges are imported once per portal and period (until that batch is removed).
    Index(
        None,
        "portal_id",
        "period",
        "fingerprint",
        unique=True,
        sqlite_where=text("removed_at IS NULL"),
        postgresql_where=text("removed_at IS NULL"),
    ),
)

usage_charges = Table(
    "usage_charges",
    metadata,
    _portal(),
    Column("usage_id", String(64), nullable=False),
    Column("period", Date, nullable=False),
    Column("batch_id", Integer, ForeignKey("usage_batches.id"), nullable=False),
    Column("source_line", Integer),  # its line in the batch's file (none before batches)
    Column("customer_id", BigInteger, nullable=False),
    Column("site_id", BigInteger),
    Column("contract_id", BigInteger),
    Column("description", String(1000), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("tax_code", String(64)),
    Column("usage_date", Date, nullable=False),
    Column("imported_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("portal_id", "usage_id"),
    Index(None, "batch_id"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _portal(),
    Column("period", Date, nullable=False),
    Column("invoice_key", String(150), nullable=False),
    Column("customer_id", BigInteger, nullable=False),
    Column("customer_name", String(300), nullable=False),
    Column("agreement_key", String(100), nullable=False),
    Column("halo_contract_id", BigInteger),
    Column("status", String(16), nullable=False),
    Column("hold_reasons", JSON, nullable=False),
    Column("number", BigInteger),
    Column("doc_number", String(21)),
    Column("invoice_date", Date, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("subtotal", Money(), nullable=False),
    Column("tax", Money(), nullable=False),
    Column("total", Money(), nullable=False),
    Column("balance", Money()),
    Column("payment_status", String(16)),
    Column("computed_at", UTCDateTime(), nullable=False),
    Column("finalized_at", UTCDateTime()),
    # A credit note (docs/billing.md rule 7) is an invoice row of its own, numbered and
    # exported like any credit, naming the invoice it credits. No foreign key: SQLite adds
    # one only by rebuilding this table, which every export and payment table refers to.
    Column("credit_of", Integer),
    Column("reason", Text),  # the operator's reason for a credit note or a void
    # Voided (rule 7): stays final and numbered, its (product, month) pairs released.
    Column("voided_at", UTCDateTime()),
    UniqueConstraint("portal_id", "invoice_key"),
    UniqueConstraint("portal_id", "number"),
    UniqueConstraint("portal_id", "doc_number"),
    CheckConstraint("status IN ('draft', 'held', 'final')", name="status"),
    Index(None, "portal_id", "period"),
    Index(None, "credit_of"),
    # What the ledger's foreign key names (an invoice of the ledger row's own portal).
    Index(None, "portal_id", "id", unique=True),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("product_id", String(64)),
    Column("usage_id", String(64)),
    Column("description", String(1000), nullable=False),
    Column("service_month", Date),
    Column("site_id", BigInteger),
    Column("qty", Quantity()),
    Column("unit_price", Quantity()),
    Column("amount", Money(), nullable=False),
    Column("tax_code", String(64)),
    Column("tax_zip", String(32)),
    Column("tax_rate", Rate()),
    Column("tax", Money(), nullable=False),
    # A repair line (kind credit / rebill): the number of the invoice it corrects.
    Column("corrects_invoice", String(21)),
    UniqueConstraint("invoice_id", "line_no"),
    CheckConstraint("kind IN ('recurring', 'usage', 'credit', 'rebill')", name="kind"),
)


def billed_pair_where(table: str = "") -> str:
    """SQL true for the rows that bill a pair now: bills (not repairs) of invoices not
    voided. `table` qualifies the columns ("" in the index)."""
    t = f"{table}." if table else ""
    return f"{t}kind = 'bill' AND {t}released_at IS NULL"


BILLED_PAIR_WHERE = billed_pair_where()

# Quantities and unit prices (× 10**4) at or beyond this are irregular: their product
# might not fit the database's 64-bit integers.
TERMS_BOUND = 3 * 10**9


# PostgreSQL storage parameters of billing_ledger (migration 0014): vacuum once 2% of the
# rows are new or dead, not the default 20% (four million rows at a million products).
LEDGER_AUTOVACUUM = {
    "autovacuum_vacuum_insert_scale_factor": "0.02",
    "autovacuum_vacuum_scale_factor": "0.02",
}


def irregular_row_where(table: str = "") -> str:
    """SQL true for a ledger row a run of months cannot stand for (a repair may concern its
    pair, docs/billing.md rule 6): a credit or re-bill, missing terms, or an amount that is
    not a full month of its quantity × unit price — in cents, half away from zero, in exact
    integer arithmetic (billing/recurring.py). `table` qualifies the columns ("" in the
    index). The partial index below has this predicate, so a query with the same text finds
    the rare irregular rows without reading the ledger."""
    t = f"{table}." if table else ""
    scaled = f"{t}qty * {t}unit_price"
    return (
        f"{t}kind <> 'bill' OR {t}qty IS NULL OR {t}unit_price IS NULL OR {t}amount IS NULL"
        f" OR {t}tax IS NULL OR CASE WHEN abs({t}qty) < {TERMS_BOUND}"
        f" AND abs({t}unit_price) < {TERMS_BOUND} THEN CASE WHEN {scaled} >= 0"
        f" THEN ({scaled} + 500000) / 1000000 ELSE -((-({scaled}) + 500000) / 1000000) END"
        f" <> {t}amount ELSE 1 = 1 END"
    )


billing_ledger = Table(
    "billing_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("portal_id", PORTAL_ID, nullable=False),
    Column("product_id", String(64), nullable=False),
    Column("service_month", Date, nullable=False),
    Column("period", Date, nullable=False),
    Column("invoice_id", Integer, nullable=False),
    # A pair's first bill, or a later repair of it on another invoice (docs/billing.md
    # rule 6), with what the row billed: repairs read it back.
    Column("kind", String(8), nullable=False, server_default="bill"),
    Column("qty", Quantity()),
    Column("unit_price", Quantity()),
    Column("amount", Money()),
    Column("tax", Money()),
    Column("tax_code", String(64)),
    Column("tax_zip", String(32)),
    Column("tax_rate", Rate()),
    # Set when the invoice was voided: the pair no longer counts as billed (rule 7).
    Column("released_at", UTCDateTime()),
    # One foreign key, not one to the portal and one to the invoice: a night's drafts write
    # a million ledger rows, and PostgreSQL checks each key of each row on its own
    # (migration 0015). The pair also says the invoice is of the row's own portal.
    ForeignKeyConstraint(
        ["portal_id", "invoice_id"], ["invoices.portal_id", "invoices.id"], ondelete="CASCADE"
    ),
    UniqueConstraint("invoice_id", "product_id", "service_month", "kind"),
    CheckConstraint("kind IN ('bill', 'credit', 'rebill')", name="kind"),
    # The money invariant: a (product, service month) is billed once, ever — by one bill
    # of an invoice that stands; a voided invoice's pairs are released and may be billed again.
    Index(
        "uq_billing_ledger_billed_pair",
        "portal_id",
        "product_id",
        "service_month",
        unique=True,
        sqlite_where=text(BILLED_PAIR_WHERE),
        postgresql_where=text(BILLED_PAIR_WHERE),
        # What the billing loader's runs of months need besides (invoicing/inputs.py
        # `_counted`): PostgreSQL reads them from the index alone.
        postgresql_include=["period", "invoice_id"],
    ),
    # The rows a repair may concern, whatever their pair's month (invoicing/inputs.py).
    Index(
        "ix_billing_ledger_irregular",
        "portal_id",
        "product_id",
        "service_month",
        sqlite_where=text(irregular_row_where()),
        postgresql_where=text(irregular_row_where()),
    ),
    # Vacuumed after each night's drafts rather than every few months: an index-only read
    # skips only pages marked all-visible, which vacuum does.
    postgresql_with=LEDGER_AUTOVACUUM,
)

billing_periods = Table(
    "billing_periods",
    metadata,
    _portal(),
    # Which periods have been computed: billing P needs P-1 computed first (the ledger is
    # cumulative), whatever launched the run.
    Column("period", Date, nullable=False),
    Column("computed_at", UTCDateTime(), nullable=False),
    Column("run_id", String(64)),
    Column("invoices", Integer, nullable=False),
    Column("held", Integer, nullable=False),
    Column("finalized_at", UTCDateTime()),
    PrimaryKeyConstraint("portal_id", "period"),
)

exports = Table(
    "exports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, ForeignKey("invoices.id"), nullable=False),
    Column("target", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("external_id", String(64)),
    Column("external_number", String(64)),
    # Sent with every create so a retried or re-run create replays instead of duplicating.
    Column("request_id", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    # Why the last attempt failed: the message, the target's own code (QBO's fault code,
    # HaloPSA's HTTP status) and since when the export has been failing (kept across
    # retries, cleared once it is exported).
    Column("last_error", Text),
    Column("error_code", String(32)),
    Column("failed_since", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("exported_at", UTCDateTime()),
    # What the target holds: QBO "Invoice" | "CreditMemo", HaloPSA "invoice" | "credit_note".
    Column("external_type", String(16)),
    # The target's own total and tax when they differ from ours by its tax rounding
    # (QBO in tax_codes mode rounds per rate): kept, shown, not a failure.
    Column("external_total", Money()),
    Column("external_tax", Money()),
    UniqueConstraint("invoice_id", "target"),
    # qbo_apply: a credit note's application to the invoice it credits, in QBO (rule 7).
    CheckConstraint("target IN ('qbo', 'halopsa', 'qbo_apply')", name="target"),
    CheckConstraint("status IN ('pending', 'exported', 'failed', 'voided')", name="status"),
)

purchasing_exports = Table(
    "purchasing_exports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _portal(),
    # A HaloPSA purchase order exported as a QBO PurchaseOrder, and later as its Bill: one
    # row per (purchase order, document, target), bookkept like `exports`.
    Column("document", String(16), nullable=False),
    Column("halo_po_id", BigInteger, nullable=False),
    Column("target", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("external_id", String(64)),
    Column("external_number", String(64)),
    Column("request_id", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("error_code", String(32)),
    Column("failed_since", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("exported_at", UTCDateTime()),
    Column("external_type", String(16)),
    UniqueConstraint("portal_id", "document", "halo_po_id", "target"),
    CheckConstraint("document IN ('purchase_order', 'bill')", name="document"),
    CheckConstraint("target IN ('qbo')", name="target"),
    CheckConstraint("status IN ('pending', 'exported', 'failed')", name="status"),
)

qbo_entities = Table(
    "qbo_entities",
    metadata,
    _portal(),
    # Links between our records (customer id, item id, term days) and QBO ids.
    Column("entity", String(32), nullable=False),
    Column("local_key", String(100), nullable=False),
    Column("qbo_id", String(64), nullable=False),
    Column("name", String(300)),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("portal_id", "entity", "local_key"),
)

# --- Operations -----------------------------------------------------------------------

api_requests = Table(
    "api_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("system", String(16), nullable=False),
    Column("direction", String(8), nullable=False, default="outbound"),
    Column("portal_id", PORTAL_ID),
    Column("run_id", String(64)),
    Column("method", String(8), nullable=False),
    Column("path", String(1000), nullable=False),
    Column("query", JSON),
    Column("status", Integer),
    Column("duration_ms", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("error", Text),
    Column("started_at", UTCDateTime(), nullable=False),
    Index(None, "portal_id", "started_at"),
)

rejects = Table(
    "rejects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("portal_id", PORTAL_ID, nullable=False),
    Column("run_id", String(64)),
    Column("asset", String(100), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("record_id", String(100)),
    Column("field", String(100)),
    Column("reason", Text, nullable=False),
    Column("raw", JSON),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "portal_id", "asset"),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("portal_id", PORTAL_ID, nullable=False),
    Column("run_id", String(64)),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("status", String(16), nullable=False),
    # The time of the data (when HaloPSA was read), not of the request.
    Column("data_as_of", UTCDateTime()),
    Column("stats", JSON),
    # A full sync reads every entity whole (deletions show only then); why it was full.
    Column("full", Boolean, nullable=False, server_default=text("false")),
    Column("full_reason", String(200)),
    # Per entity: how it was read (incremental, full, or full after a fallback, and why).
    Column("reads", JSON),
    Index(None, "portal_id", "started_at"),
)

sync_entities = Table(
    "sync_entities",
    metadata,
    _portal(),
    # The ingest asset, e.g. halo_clients.
    Column("entity", String(64), nullable=False),
    # The data time of the last read whose records were written: the next incremental
    # read asks for changes since then (less the overlap).
    Column("read_as_of", UTCDateTime(), nullable=False),
    Column("read_kind", String(16), nullable=False),
    # HaloPSA ignored the change filter (records older than the cutoff came back): reads
    # are full until a full sync of the portal succeeds.
    Column("incremental_off_reason", Text),
    Column("incremental_off_at", UTCDateTime()),
    PrimaryKeyConstraint("portal_id", "entity"),
)

force_sync_requests = Table(
    "force_sync_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("portal_id", PORTAL_ID, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("requested_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("run_id", String(64)),
    Column("error", Text),
    Column("handled_at", UTCDateTime()),
    # `force-sync --full`: the run reads every entity whole.
    Column("full", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint(
        "status IN ('pending', 'launched', 'coalesced', 'failed', 'done')", name="status"
    ),
)

qbo_tokens = Table(
    "qbo_tokens",
    metadata,
    Column("portal_id", PORTAL_ID, primary_key=True),
    Column("realm_id", String(32), nullable=False),
    # Fernet-encrypted; the key comes from the environment, never from the database.
    Column("refresh_token", Text, nullable=False),
    Column("refresh_token_issued_at", UTCDateTime(), nullable=False),
    Column("access_token", Text),
    Column("access_token_expires_at", UTCDateTime()),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # The refresh token the current one replaced (encrypted): QBO keeps it valid for a grace
    # window, so it is the fallback when the current one is refused (qbo_tokens.py).
    Column("previous_refresh_token", Text),
    Column("previous_replaced_at", UTCDateTime()),
    Column("refresh_token_expires_at", UTCDateTime()),
    # Where the current refresh token came from: portals.yaml, refresh or connect.
    Column("source", String(16)),
)

# --- Payments (QBO → warehouse → HaloPSA) -----------------------------------------------
# History is appended, never overwritten: a payment application or an invoice's QBO state
# gets a new row when it changes, keyed by the QBO version it was read at, so re-reading the
# same version stores nothing. `invoices.payment_status` / `balance` hold the latest.

qbo_webhook_events = Table(
    "qbo_webhook_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _portal(),
    Column("realm_id", String(32), nullable=False),
    # CloudEvents `id`; legacy notifications have none (docs/qbo-api.md §6.2–6.3).
    Column("event_id", String(100)),
    Column("format", String(16), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("last_updated", UTCDateTime()),
    Column("deleted_id", String(64)),
    Column("received_at", UTCDateTime(), nullable=False),
    # Set by the qbo_webhooks sensor: the run that reads the change, or why none does.
    Column("run_key", String(200)),
    Column("handled_at", UTCDateTime()),
    Column("note", String(300)),
    # A replay (Intuit sends again when it got no 200 in time) is an event already stored.
    UniqueConstraint("portal_id", "event_id", name="uq_qbo_webhook_events_event_id"),
    UniqueConstraint(
        "portal_id",
        "entity",
        "entity_id",
        "operation",
        "last_updated",
        name="uq_qbo_webhook_events_change",
    ),
    CheckConstraint("format IN ('legacy', 'cloudevents')", name="format"),
    Index(None, "portal_id", "received_at"),
)

payment_applications = Table(
    "payment_applications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _portal(),
    # One QBO Payment applied to one QBO invoice; `invoice_id` is ours (None: an invoice we
    # never exported, kept so nothing read is lost).
    Column("qbo_payment_id", String(64), nullable=False),
    Column("qbo_invoice_id", String(64), nullable=False),
    Column("invoice_id", Integer, ForeignKey("invoices.id")),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("amount", Money(), nullable=False),
    Column("payment_date", Date),
    Column("method", String(100)),
    Column("reference", String(200)),
    # The QBO version this row was read at: the payment's SyncToken, or what removed it.
    Column("qbo_version", String(64), nullable=False),
    Column("qbo_updated_at", UTCDateTime()),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("run_id", String(64)),
    UniqueConstraint(
        "portal_id",
        "qbo_payment_id",
        "qbo_invoice_id",
        "qbo_version",
        name="uq_payment_applications_version",
    ),
    CheckConstraint("kind IN ('payment', 'credit')", name="kind"),
    CheckConstraint("state IN ('applied', 'removed')", name="state"),
    Index(None, "portal_id", "invoice_id"),
)

invoice_payment_states = Table(
    "invoice_payment_states",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _portal(),
    Column("invoice_id", Integer, ForeignKey("invoices.id"), nullable=False),
    Column("qbo_invoice_id", String(64), nullable=False),
    Column("payment_status", String(16), nullable=False),
    Column("balance", Money()),
    Column("qbo_total", Money()),
    # open, voided, or deleted (gone from QBO: the invoice keeps its last status).
    Column("qbo_state", String(16), nullable=False),
    Column("qbo_version", String(64), nullable=False),
    Column("qbo_updated_at", UTCDateTime()),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("run_id", String(64)),
    UniqueConstraint("invoice_id", "qbo_version", name="uq_invoice_payment_states_version"),
    CheckConstraint("qbo_state IN ('open', 'voided', 'deleted')", name="qbo_state"),
)

qbo_payment_cursors = Table(
    "qbo_payment_cursors",
    metadata,
    Column("portal_id", PORTAL_ID, ForeignKey("portals.id"), primary_key=True),
    Column("realm_id", String(32), nullable=False),
    # QBO's own clock: the next refresh asks CDC for changes since this time.
    Column("changed_since", UTCDateTime(), nullable=False),
    Column("refreshed_at", UTCDateTime(), nullable=False),
    Column("mode", String(32), nullable=False),
    Column("api_calls", Integer, nullable=False),
    Column("changed_objects", Integer, nullable=False),
    Column("run_id", String(64)),
)

halo_payment_exports = Table(
    "halo_payment_exports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _portal(),
    # One payment application recorded on its HaloPSA invoice; a new version when QBO's
    # amount changes (the old HaloPSA payment is deleted first).
    Column("qbo_payment_id", String(64), nullable=False),
    Column("qbo_invoice_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("invoice_id", Integer, ForeignKey("invoices.id"), nullable=False),
    Column("halo_invoice_id", BigInteger, nullable=False),
    Column("amount", Money(), nullable=False),
    Column("payment_date", Date, nullable=False),
    Column("method", Integer, nullable=False),
    # Our reference, written into the HaloPSA record and looked up before every create.
    Column("reference", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("halo_payment_id", BigInteger),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("exported_at", UTCDateTime()),
    UniqueConstraint(
        "portal_id",
        "qbo_payment_id",
        "qbo_invoice_id",
        "version",
        name="uq_halo_payment_exports_version",
    ),
    UniqueConstraint("portal_id", "reference", name="uq_halo_payment_exports_reference"),
    CheckConstraint("status IN ('pending', 'exported', 'failed', 'removed')", name="status"),
)

# --- Review, approval and the audit trail ------------------------------------------------

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _portal(),
    Column("period", Date, nullable=False),
    Column("approved_by", String(200), nullable=False),
    Column("approved_at", UTCDateTime(), nullable=False),
    Column("note", Text),
    # The drafts approved: their fingerprint, and each invoice key's own digest, so a change
    # between approval and finalization can be named; the keys left out (`--except`).
    Column("fingerprint", String(64), nullable=False),
    Column("invoices", JSON, nullable=False),
    Column("excepted", JSON, nullable=False),
    # pending (filed) → launched (its run queued) → finalized | refused (drafts changed) |
    # failed (the run broke; approve again)
    Column("status", String(16), nullable=False),
    Column("run_key", String(100)),
    Column("run_id", String(64)),
    Column("outcome", Text),
    Column("settled_at", UTCDateTime()),
    CheckConstraint(
        "status IN ('pending', 'launched', 'finalized', 'refused', 'failed')", name="status"
    ),
    Index(None, "portal_id", "period"),
)

invoice_holds = Table(
    "invoice_holds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _portal(),
    # By invoice key: drafts are recomputed from scratch, the key stays (docs/billing.md,
    # rule 3), so the hold outlives every recomputation until it is released.
    Column("invoice_key", String(150), nullable=False),
    Column("reason", Text, nullable=False),
    Column("held_by", String(200), nullable=False),
    Column("held_at", UTCDateTime(), nullable=False),
    Column("released_by", String(200)),
    Column("released_at", UTCDateTime()),
    Index(None, "portal_id", "invoice_key"),
)

# Append-only: triggers made by migration 0010 refuse UPDATE and DELETE (and TRUNCATE on
# PostgreSQL). Rows are written by `warehouse/audit.py` only.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # No foreign key: an event is never refused for the state of another table.
    Column("portal_id", PORTAL_ID, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("period", Date),
    Column("invoice_key", String(150)),
    # What changed that matters (before/after, numbers, targets), as JSON.
    Column("details", JSON, nullable=False),
    Column("run_id", String(64)),
    Index(None, "portal_id", "occurred_at"),
    Index(None, "portal_id", "invoice_key"),
)
