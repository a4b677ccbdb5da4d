-- What each customer is invoiced, site by site: per portal, billing period, customer and
-- site, how many invoices have lines there, how many lines, the amounts and the invoices'
-- statuses (draft, held, final). Lines with no site form their own row (site_id null).
-- Grain: one row per (portal_id, period, customer_id, site_id); period is the billing
-- period's first day (YYYY-MM-01). An invoice with lines at two sites counts in both rows;
-- sum the money columns over sites for the customer's invoice totals.
-- Units: subtotal_minor, tax_minor and total_minor are integer minor units (cents) of the
-- portal's currency; total_minor = subtotal_minor + tax_minor.
WITH invoice_sites AS (
    SELECT
        i.portal_id,
        i.period,
        i.customer_id,
        i.customer_name,
        l.site_id,
        i.id AS invoice_id,
        i.status,
        COUNT(*) AS lines,
        SUM(l.amount) AS subtotal_minor,
        SUM(l.tax) AS tax_minor
    FROM invoices AS i
    JOIN invoice_lines AS l ON l.invoice_id = i.id
    GROUP BY i.portal_id, i.period, i.customer_id, i.customer_name, l.site_id, i.id, i.status
)
SELECT
    v.portal_id,
    v.period,
    v.customer_id,
    MAX(v.customer_name) AS customer_name,
    v.site_id,
    MAX(s.name) AS site_name,
    COUNT(*) AS invoices,
    CAST(SUM(v.lines) AS BIGINT) AS lines,
    -- PostgreSQL sums BIGINT into NUMERIC: cast back so every database returns integers.
    CAST(SUM(v.subtotal_minor) AS BIGINT) AS subtotal_minor,
    CAST(SUM(v.tax_minor) AS BIGINT) AS tax_minor,
    CAST(SUM(v.subtotal_minor + v.tax_minor) AS BIGINT) AS total_minor,
    SUM(CASE WHEN v.status = 'draft' THEN 1 ELSE 0 END) AS draft_invoices,
    SUM(CASE WHEN v.status = 'held' THEN 1 ELSE 0 END) AS held_invoices,
    SUM(CASE WHEN v.status = 'final' THEN 1 ELSE 0 END) AS final_invoices
FROM invoice_sites AS v
LEFT JOIN sites AS s
    ON s.portal_id = v.portal_id
    AND s.halo_site_id = v.site_id
GROUP BY v.portal_id, v.period, v.customer_id, v.site_id
