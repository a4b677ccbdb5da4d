-- The audit trail as people read it: every approval, refused approval, hold, release,
-- finalization, export, credit and void, with who did it, when, to which invoice (its
-- number, customer and status now, once it has them) and in which run; details holds what
-- changed (before/after, numbers, targets) as JSON. The table under it is append-only:
-- its rows are never updated or deleted.
-- Grain: one row per audit event (event_id), in the order they happened.
-- Units: money inside details is a decimal string in the portal's currency.
SELECT
    e.id AS event_id,
    e.portal_id,
    e.occurred_at,
    e.actor,
    e.action,
    e.period,
    e.invoice_key,
    i.doc_number,
    i.customer_id,
    i.customer_name,
    i.status AS invoice_status,
    e.run_id,
    e.details
FROM audit_events AS e
LEFT JOIN invoices AS i
    ON i.portal_id = e.portal_id
    AND i.invoice_key = e.invoice_key
