"""The entity types the simulator knows, by name (``Customer``) and by URL path (``customer``)."""

from __future__ import annotations

from .names import Account, Customer, Item, TaxAgency, TaxCode, TaxRate, Term
from .rules import Entity
from .transactions import Invoice, Payment

__all__ = ["ENTITIES", "ENTITIES_BY_PATH"]

ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Customer(),
        Item(),
        Account(),
        Term(),
        TaxCode(),
        TaxRate(),
        TaxAgency(),
        Invoice(),
        Payment(),
    )
}
ENTITIES_BY_PATH: dict[str, Entity] = {e.path: e for e in ENTITIES.values()}
