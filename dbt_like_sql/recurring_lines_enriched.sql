-- Every HaloPSA recurring-invoice line next to what the product filters look at: its
-- client (and whether it is ticked "Datagate"), contract and contract type, item and item
-- group, and whether the sync made a product of it. A line with has_product false was
-- filtered out (contract type, item group, product sync off) or rejected (see `rejects`).
-- Grain: one row per (portal_id, line_id). Lines that vanished from HaloPSA stay, flagged
-- is_deleted (they end-date their product); the records joined to a line are live ones
-- only (deleted_at is null), so a vanished contract or item shows as null.
-- Units: qty_e4 and unit_price_e4 are stored ×10^4 (4 decimal places); monthly_minor is
-- qty × unit_price in minor units (cents), rounded half away from zero.
SELECT
    l.portal_id,
    l.halo_id AS line_id,
    l.recurring_invoice_id,
    l.client_id,
    cl.name AS client_name,
    COALESCE(cl.opted_in, FALSE) AS opted_in,
    cl.inactive AS client_inactive,
    l.contract_id,
    ct.ref AS contract_ref,
    ct.contract_type_id,
    ct.contract_type_name,
    l.item_id,
    it.name AS item_name,
    it.item_group_id,
    ig.name AS item_group_name,
    l.site_id,
    l.description,
    l.qty AS qty_e4,
    l.unit_price AS unit_price_e4,
    -- ×10^4 × ×10^4 = ×10^8; to cents: divide by 10^6, half away from zero (integer
    -- division truncates toward zero on both SQLite and PostgreSQL).
    CASE
        WHEN l.qty * l.unit_price >= 0 THEN (l.qty * l.unit_price + 500000) / 1000000
        ELSE -((500000 - l.qty * l.unit_price) / 1000000)
    END AS monthly_minor,
    l.halo_tax_code,
    l.start_date,
    l.end_date,
    l.is_inactive,
    COALESCE(ri.period, l.period) AS halo_period,
    p.product_id,
    p.product_id IS NOT NULL AS has_product,
    p.billing_cycle,
    p.end_date AS product_end_date,
    p.ended_reason AS product_ended_reason,
    l.deleted_at IS NOT NULL AS is_deleted,
    l.deleted_at
FROM recurring_invoice_lines AS l
LEFT JOIN recurring_invoices AS ri
    ON ri.portal_id = l.portal_id
    AND ri.halo_id = l.recurring_invoice_id
    AND ri.deleted_at IS NULL
LEFT JOIN halo_clients AS cl
    ON cl.portal_id = l.portal_id
    AND cl.halo_id = l.client_id
    AND cl.deleted_at IS NULL
LEFT JOIN contracts AS ct
    ON ct.portal_id = l.portal_id
    AND ct.halo_id = l.contract_id
    AND ct.deleted_at IS NULL
LEFT JOIN items AS it
    ON it.portal_id = l.portal_id
    AND it.halo_id = l.item_id
    AND it.deleted_at IS NULL
LEFT JOIN item_groups AS ig
    ON ig.portal_id = it.portal_id
    AND ig.halo_id = it.item_group_id
    AND ig.deleted_at IS NULL
LEFT JOIN products AS p
    ON p.portal_id = l.portal_id
    AND p.source_line_id = l.halo_id
