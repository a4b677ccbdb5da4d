-- Where the invoices stand with each target system (HaloPSA and QuickBooks Online): per
-- portal, billing period and target, how many invoices are exported, pending, failed or
-- voided there, how many final invoices have no export yet (not_exported) and how many
-- are not final so cannot be exported (not_final: drafts and held invoices).
-- A portal without a QBO company lists its invoices as not_exported for qbo.
-- Grain: one row per (portal_id, period, target, export_status).
-- Units: total_minor is the invoices' total in integer minor units (cents).
WITH targets AS (
    SELECT 'halopsa' AS target
    UNION ALL
    SELECT 'qbo' AS target
),
invoice_targets AS (
    SELECT
        i.portal_id,
        i.period,
        t.target,
        CASE
            WHEN e.status IS NOT NULL THEN e.status
            WHEN i.status = 'final' THEN 'not_exported'
            ELSE 'not_final'
        END AS export_status,
        i.total,
        e.attempts,
        e.updated_at
    FROM invoices AS i
    CROSS JOIN targets AS t
    LEFT JOIN exports AS e
        ON e.invoice_id = i.id
        AND e.target = t.target
)
SELECT
    portal_id,
    period,
    target,
    export_status,
    COUNT(*) AS invoices,
    CAST(SUM(total) AS BIGINT) AS total_minor,
    COALESCE(SUM(attempts), 0) AS attempts,
    MAX(updated_at) AS last_updated_at
FROM invoice_targets
GROUP BY portal_id, period, target, export_status
