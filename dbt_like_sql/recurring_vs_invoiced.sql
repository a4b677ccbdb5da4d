-- Does what we invoiced for recurring products match what HaloPSA says the customer pays
-- each month? Per portal, billing period and customer: HaloPSA's recurring monthly total
-- (Σ qty × unit_price of the customer's live, active lines that are products on a monthly
-- billing cycle and run during the period's service month) against the recurring lines
-- invoiced in that period, and the difference. A difference is expected for pro rata
-- months (a line starting or ending inside the month) and catch-up months; anything else
-- is worth a look. halo_lines_not_billable counts the customer's active lines that are not
-- billed by us (filtered out, rejected, or not on a monthly cycle).
-- The service month is the latest one in the period's billing ledger (T = P + advance), so
-- a period appears once it has billed a recurring month.
-- Grain: one row per (portal_id, period, customer_id).
-- Units: halo_monthly_minor, invoiced_minor and difference_minor (= invoiced − HaloPSA)
-- are integer minor units (cents); each line's qty × unit_price is rounded half away from
-- zero before summing, as on an invoice.
WITH service_months AS (
    SELECT portal_id, period, MAX(service_month) AS service_month
    FROM billing_ledger
    GROUP BY portal_id, period
),
halo AS (
    SELECT
        m.portal_id,
        m.period,
        e.client_id AS customer_id,
        SUM(CASE WHEN e.has_product AND e.billing_cycle = 'monthly' THEN 1 ELSE 0 END)
            AS halo_lines,
        SUM(CASE WHEN e.has_product AND e.billing_cycle = 'monthly' THEN e.monthly_minor ELSE 0 END)
            AS halo_monthly_minor,
        SUM(CASE WHEN e.has_product AND e.billing_cycle = 'monthly' THEN 0 ELSE 1 END)
            AS halo_lines_not_billable
    FROM service_months AS m
    JOIN recurring_lines_enriched AS e ON e.portal_id = m.portal_id
    JOIN customers AS c
        ON c.portal_id = e.portal_id
        AND c.halo_client_id = e.client_id
    WHERE NOT e.is_deleted
        AND NOT e.is_inactive
        -- Runs during the service month: started by its last day, not ended before its
        -- first. Months compare as 'YYYY-MM' text, which both databases give for a date.
        AND (
            e.start_date IS NULL
            OR SUBSTR(CAST(e.start_date AS VARCHAR(10)), 1, 7)
                <= SUBSTR(CAST(m.service_month AS VARCHAR(10)), 1, 7)
        )
        AND (e.end_date IS NULL OR e.end_date >= m.service_month)
    GROUP BY m.portal_id, m.period, e.client_id
),
invoiced AS (
    SELECT
        i.portal_id,
        i.period,
        i.customer_id,
        COUNT(*) AS invoiced_lines,
        SUM(l.amount) AS invoiced_minor
    FROM invoices AS i
    JOIN invoice_lines AS l ON l.invoice_id = i.id
    WHERE l.kind = 'recurring'
    GROUP BY i.portal_id, i.period, i.customer_id
),
customer_periods AS (
    SELECT portal_id, period, customer_id FROM halo
    UNION
    SELECT portal_id, period, customer_id FROM invoiced
)
SELECT
    k.portal_id,
    k.period,
    m.service_month,
    k.customer_id,
    c.name AS customer_name,
    c.active AS customer_active,
    COALESCE(h.halo_lines, 0) AS halo_lines,
    CAST(COALESCE(h.halo_monthly_minor, 0) AS BIGINT) AS halo_monthly_minor,
    COALESCE(h.halo_lines_not_billable, 0) AS halo_lines_not_billable,
    COALESCE(v.invoiced_lines, 0) AS invoiced_lines,
    CAST(COALESCE(v.invoiced_minor, 0) AS BIGINT) AS invoiced_minor,
    CAST(COALESCE(v.invoiced_minor, 0) - COALESCE(h.halo_monthly_minor, 0) AS BIGINT)
        AS difference_minor
FROM customer_periods AS k
LEFT JOIN service_months AS m
    ON m.portal_id = k.portal_id
    AND m.period = k.period
LEFT JOIN halo AS h
    ON h.portal_id = k.portal_id
    AND h.period = k.period
    AND h.customer_id = k.customer_id
LEFT JOIN invoiced AS v
    ON v.portal_id = k.portal_id
    AND v.period = k.period
    AND v.customer_id = k.customer_id
LEFT JOIN customers AS c
    ON c.portal_id = k.portal_id
    AND c.halo_client_id = k.customer_id
