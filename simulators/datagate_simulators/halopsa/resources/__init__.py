"""The HaloPSA resources the simulator serves, by canonical name."""

from datagate_simulators.halopsa.resources.base import Errors, ListQuery, Resource
from datagate_simulators.halopsa.resources.catalog import AssetGroup, Item, ItemGroup, Tax
from datagate_simulators.halopsa.resources.customers import Client, ClientContract, Site
from datagate_simulators.halopsa.resources.fields import CustomFieldValues, FieldInfo
from datagate_simulators.halopsa.resources.invoices import Invoice, RecurringInvoice

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Client(), Site(), ClientContract(), Item(), AssetGroup(), ItemGroup(), Tax(), FieldInfo(),
        RecurringInvoice(), Invoice(),
    )
}  # fmt: skip

__all__ = ["RESOURCES", "CustomFieldValues", "Errors", "ListQuery", "Resource"]
