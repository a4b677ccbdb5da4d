-- Which service months each product has been billed for: per portal and product, the
-- months in the billing ledger, the first and last of them, over how many billing periods
-- they were billed (more than one when months were caught up), how many sit on final
-- invoices, and the amount billed net of repairs. The ledger bills a (product, service
-- month) once, ever (kind 'bill'); later 'credit' and 'rebill' rows repair it
-- (docs/billing.md rule 6) and count in the amount only.
-- Grain: one row per (portal_id, product_id) that has at least one ledger row.
-- Units: billed_minor is integer minor units (cents); service months are first days of
-- months (YYYY-MM-01).
SELECT
    g.portal_id,
    g.product_id,
    MAX(p.customer_id) AS customer_id,
    MAX(p.description) AS description,
    SUM(CASE WHEN g.kind = 'bill' THEN 1 ELSE 0 END) AS months_billed,
    MIN(g.service_month) AS first_service_month,
    MAX(g.service_month) AS last_service_month,
    COUNT(DISTINCT CASE WHEN g.kind = 'bill' THEN g.period END) AS periods,
    SUM(CASE WHEN g.kind = 'bill' AND i.status = 'final' THEN 1 ELSE 0 END) AS months_final,
    CAST(SUM(COALESCE(g.amount, 0)) AS BIGINT) AS billed_minor
FROM billing_ledger AS g
JOIN invoices AS i ON i.id = g.invoice_id
LEFT JOIN products AS p
    ON p.portal_id = g.portal_id
    AND p.product_id = g.product_id
GROUP BY g.portal_id, g.product_id
