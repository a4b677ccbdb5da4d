-- Accounts-receivable aging: per portal and customer, what the final invoices still owe, by
-- how far past their due date: current (not due yet), 1–30, 31–60, 61–90 and over 90 days,
-- as of the day the view is read (CURRENT_DATE; UTC on SQLite).
-- An invoice owes its balance as QBO last reported it (the payments refresh), else its total
-- (not read back yet); paid, credited and voided invoices, and invoices voided by us, owe
-- nothing. Credit memos not yet applied are not netted here.
-- Grain: one row per (portal_id, customer_id) that owes something.
-- Units: *_minor are integer minor units (cents) of the portal's currency; days are whole
-- days past due_date (julianday() on both databases: migration 0005 adds it to PostgreSQL).
WITH open_invoices AS (
    SELECT
        i.portal_id,
        i.customer_id,
        i.customer_name,
        COALESCE(i.balance, i.total) AS owed_minor,
        CAST(julianday(CURRENT_DATE) - julianday(i.due_date) AS INTEGER) AS days_past_due
    FROM invoices AS i
    WHERE i.status = 'final'
        AND COALESCE(i.payment_status, 'unpaid') NOT IN ('paid', 'credited', 'voided')
        AND COALESCE(i.balance, i.total) > 0
        AND NOT EXISTS (
            SELECT 1 FROM exports AS e WHERE e.invoice_id = i.id AND e.status = 'voided'
        )
)
SELECT
    portal_id,
    customer_id,
    MAX(customer_name) AS customer_name,
    COUNT(*) AS open_invoices,
    -- PostgreSQL sums BIGINT into NUMERIC: cast back so every database returns integers.
    CAST(SUM(CASE WHEN days_past_due <= 0 THEN owed_minor ELSE 0 END) AS BIGINT) AS current_minor,
    CAST(SUM(CASE WHEN days_past_due BETWEEN 1 AND 30 THEN owed_minor ELSE 0 END) AS BIGINT)
        AS days_1_30_minor,
    CAST(SUM(CASE WHEN days_past_due BETWEEN 31 AND 60 THEN owed_minor ELSE 0 END) AS BIGINT)
        AS days_31_60_minor,
    CAST(SUM(CASE WHEN days_past_due BETWEEN 61 AND 90 THEN owed_minor ELSE 0 END) AS BIGINT)
        AS days_61_90_minor,
    CAST(SUM(CASE WHEN days_past_due > 90 THEN owed_minor ELSE 0 END) AS BIGINT)
        AS over_90_minor,
    CAST(SUM(owed_minor) AS BIGINT) AS total_minor,
    MAX(days_past_due) AS oldest_days_past_due
FROM open_invoices
GROUP BY portal_id, customer_id
