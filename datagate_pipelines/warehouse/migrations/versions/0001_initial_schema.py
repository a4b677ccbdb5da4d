"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 00:43:52.700708
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("system", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("portal_id", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("query", sa.JSON(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_requests")),
    )
    with op.batch_alter_table("api_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_requests_portal_id_started_at"),
            ["portal_id", "started_at"],
            unique=False,
        )

    op.create_table(
        "force_sync_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'launched', 'coalesced', 'failed', 'done')",
            name=op.f("ck_force_sync_requests_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_force_sync_requests")),
    )
    op.create_table(
        "portals",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_invoice_number", sa.BigInteger(), nullable=False),
        sa.Column("last_successful_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portals")),
    )
    op.create_table(
        "qbo_tokens",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("realm_id", sa.String(length=32), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("refresh_token_issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("access_token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("portal_id", name=op.f("pk_qbo_tokens")),
    )
    op.create_table(
        "rejects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("asset", sa.String(length=100), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=100), nullable=True),
        sa.Column("field", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejects")),
    )
    with op.batch_alter_table("rejects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rejects_portal_id_asset"), ["portal_id", "asset"], unique=False
        )

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("data_as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_runs_portal_id_started_at"),
            ["portal_id", "started_at"],
            unique=False,
        )

    op.create_table(
        "tax_rates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("zip", sa.String(length=32), nullable=False),
        sa.Column("tax_code", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction", sa.String(length=200), nullable=False),
        sa.Column("rate", sa.BigInteger(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_rates")),
        sa.UniqueConstraint(
            "zip", "tax_code", "jurisdiction", name=op.f("uq_tax_rates_zip_tax_code_jurisdiction")
        ),
    )
    op.create_table(
        "agreements",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("agreement_key", sa.String(length=100), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contract_id", sa.BigInteger(), nullable=True),
        sa.Column("halo_export_contract_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('default', 'contract', 'no_contract')", name=op.f("ck_agreements_kind")
        ),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_agreements_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "agreement_key", name=op.f("pk_agreements")),
    )
    op.create_table(
        "contracts",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=True),
        sa.Column("contract_type_id", sa.BigInteger(), nullable=True),
        sa.Column("contract_type_name", sa.String(length=200), nullable=True),
        sa.Column("site_id", sa.BigInteger(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_contracts_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_contracts")),
    )
    op.create_table(
        "customers",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_client_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("main_site_id", sa.BigInteger(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("zip", sa.String(length=32), nullable=True),
        sa.Column("use_site_zip_tax", sa.Boolean(), nullable=False),
        sa.Column("opening_balance", sa.BigInteger(), nullable=True),
        sa.Column("opening_balance_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_customers_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_client_id", name=op.f("pk_customers")),
    )
    op.create_table(
        "halo_clients",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("inactive", sa.Boolean(), nullable=False),
        sa.Column("opted_in", sa.Boolean(), nullable=False),
        sa.Column("main_site_id", sa.BigInteger(), nullable=True),
        sa.Column("start_balance", sa.BigInteger(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_halo_clients_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_halo_clients")),
    )
    op.create_table(
        "halo_sites",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("postcode", sa.String(length=32), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("inactive", sa.Boolean(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_halo_sites_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_halo_sites")),
    )
    op.create_table(
        "halo_taxes",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=True),
        sa.Column("rate_percent", sa.BigInteger(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_halo_taxes_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_halo_taxes")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("invoice_key", sa.String(length=150), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_name", sa.String(length=300), nullable=False),
        sa.Column("agreement_key", sa.String(length=100), nullable=False),
        sa.Column("halo_contract_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hold_reasons", sa.JSON(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=True),
        sa.Column("doc_number", sa.String(length=21), nullable=True),
        sa.Column("invoice_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("tax", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=True),
        sa.Column("payment_status", sa.String(length=16), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'held', 'final')", name=op.f("ck_invoices_status")),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_invoices_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint(
            "portal_id", "doc_number", name=op.f("uq_invoices_portal_id_doc_number")
        ),
        sa.UniqueConstraint(
            "portal_id", "invoice_key", name=op.f("uq_invoices_portal_id_invoice_key")
        ),
        sa.UniqueConstraint("portal_id", "number", name=op.f("uq_invoices_portal_id_number")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invoices_portal_id_period"), ["portal_id", "period"], unique=False
        )

    op.create_table(
        "item_groups",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_item_groups_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_item_groups")),
    )
    op.create_table(
        "items",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("item_group_id", sa.BigInteger(), nullable=True),
        sa.Column("halo_tax_id", sa.BigInteger(), nullable=True),
        sa.Column("is_recurring", sa.Boolean(), nullable=False),
        sa.Column("base_price", sa.BigInteger(), nullable=True),
        sa.Column("nominal_code", sa.String(length=100), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_items_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_items")),
    )
    op.create_table(
        "product_sites",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_product_sites_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "product_id", name=op.f("pk_product_sites")),
    )
    op.create_table(
        "product_templates",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("item_name", sa.String(length=300), nullable=True),
        sa.Column("tax_code", sa.String(length=64), nullable=True),
        sa.Column("income_account", sa.String(length=200), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_product_templates_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "item_id", name=op.f("pk_product_templates")),
    )
    op.create_table(
        "products",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("source_line_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=True),
        sa.Column("contract_id", sa.BigInteger(), nullable=True),
        sa.Column("item_id", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("tax_code", sa.String(length=64), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("billing_cycle", sa.String(length=32), nullable=False),
        sa.Column("ended_reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_products_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "product_id", name=op.f("pk_products")),
    )
    op.create_table(
        "qbo_entities",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("local_key", sa.String(length=100), nullable=False),
        sa.Column("qbo_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_qbo_entities_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "entity", "local_key", name=op.f("pk_qbo_entities")),
    )
    op.create_table(
        "recurring_invoice_lines",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("recurring_invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("halo_tax_code", sa.String(length=32), nullable=True),
        sa.Column("contract_id", sa.BigInteger(), nullable=True),
        sa.Column("site_id", sa.BigInteger(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("is_inactive", sa.Boolean(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_recurring_invoice_lines_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_recurring_invoice_lines")),
    )
    op.create_table(
        "recurring_invoices",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=True),
        sa.Column("contract_id", sa.BigInteger(), nullable=True),
        sa.Column("period", sa.Integer(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_recurring_invoices_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_id", name=op.f("pk_recurring_invoices")),
    )
    op.create_table(
        "sites",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("halo_site_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("zip", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_sites_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "halo_site_id", name=op.f("pk_sites")),
    )
    op.create_table(
        "usage_charges",
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("usage_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=True),
        sa.Column("contract_id", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("tax_code", sa.String(length=64), nullable=True),
        sa.Column("usage_date", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_usage_charges_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("portal_id", "usage_id", name=op.f("pk_usage_charges")),
    )
    op.create_table(
        "billing_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("portal_id", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("service_month", sa.Date(), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_billing_ledger_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["portal_id"], ["portals.id"], name=op.f("fk_billing_ledger_portal_id_portals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_ledger")),
        sa.UniqueConstraint(
            "portal_id",
            "product_id",
            "service_month",
            name=op.f("uq_billing_ledger_portal_id_product_id_service_month"),
        ),
    )
    op.create_table(
        "exports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("external_number", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'exported', 'failed', 'voided')", name=op.f("ck_exports_status")
        ),
        sa.CheckConstraint("target IN ('qbo', 'halopsa')", name=op.f("ck_exports_target")),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_exports_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
        sa.UniqueConstraint("invoice_id", "target", name=op.f("uq_exports_invoice_id_target")),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=True),
        sa.Column("usage_id", sa.String(length=64), nullable=True),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("service_month", sa.Date(), nullable=True),
        sa.Column("site_id", sa.BigInteger(), nullable=True),
        sa.Column("qty", sa.BigInteger(), nullable=True),
        sa.Column("unit_price", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("tax_code", sa.String(length=64), nullable=True),
        sa.Column("tax_zip", sa.String(length=32), nullable=True),
        sa.Column("tax_rate", sa.BigInteger(), nullable=True),
        sa.Column("tax", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('recurring', 'usage')", name=op.f("ck_invoice_lines_kind")),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_lines_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
        sa.UniqueConstraint(
            "invoice_id", "line_no", name=op.f("uq_invoice_lines_invoice_id_line_no")
        ),
    )


def downgrade() -> None:
    op.drop_table("invoice_lines")
    op.drop_table("exports")
    op.drop_table("billing_ledger")
    op.drop_table("usage_charges")
    op.drop_table("sites")
    op.drop_table("recurring_invoices")
    op.drop_table("recurring_invoice_lines")
    op.drop_table("qbo_entities")
    op.drop_table("products")
    op.drop_table("product_templates")
    op.drop_table("product_sites")
    op.drop_table("items")
    op.drop_table("item_groups")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoices_portal_id_period"))

    op.drop_table("invoices")
    op.drop_table("halo_taxes")
    op.drop_table("halo_sites")
    op.drop_table("halo_clients")
    op.drop_table("customers")
    op.drop_table("contracts")
    op.drop_table("agreements")
    op.drop_table("tax_rates")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_runs_portal_id_started_at"))

    op.drop_table("sync_runs")
    with op.batch_alter_table("rejects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejects_portal_id_asset"))

    op.drop_table("rejects")
    op.drop_table("qbo_tokens")
    op.drop_table("portals")
    op.drop_table("force_sync_requests")
    with op.batch_alter_table("api_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_requests_portal_id_started_at"))

    op.drop_table("api_requests")
