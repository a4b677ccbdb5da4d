"""Name-list entities: Customer, Vendor, Employee, Item, Account, Term, and the tax lists
(docs/qbo-api.md §3.1–3.6, §B1).

Name lists cannot be deleted, only deactivated (``Active: false``); queries return active
records unless the WHERE clause constrains ``Active``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from .. import errors
from .base import Books, Entity, blank, decimal_field, integer_field, words

__all__ = [
    "Account",
    "Customer",
    "Employee",
    "Item",
    "TaxAgency",
    "TaxCode",
    "TaxRate",
    "Term",
    "Vendor",
]

#: DisplayName is unique across these three lists (6240, docs/qbo-api.md §3.1, §B1).
NAME_NAMESPACE = ("Customer", "Vendor", "Employee")
#: The name parts that stand in for a missing DisplayName (§3.1, §B1).
NAME_PARTS = ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")


def _active(data: dict[str, Any], entity: str) -> bool:
    value = data.get("Active", True)
    if not isinstance(value, bool):
        raise errors.unsupported_property("Active", entity)
    return value


class Customer(Entity):
    name = "Customer"
    path = "customer"
    name_list = True
    fields = words(
        """DisplayName Title GivenName MiddleName FamilyName Suffix CompanyName PrintOnCheckName
        Active Taxable BillAddr ShipAddr PrimaryPhone AlternatePhone Mobile Fax PrimaryEmailAddr
        WebAddr DefaultTaxCodeRef SalesTermRef PaymentMethodRef CurrencyRef ParentRef Job
        BillWithParent Notes PreferredDeliveryMethod ResaleNum Level TaxExemptionReasonId
        PrimaryTaxIdentifier SecondaryTaxIdentifier BusinessNumber ARAccountRef CustomerTypeRef
        OpenBalanceDate GSTIN GSTRegistrationType IsProject ClientEntityId Source
        TaxRegimeRef"""
    )
    read_only = frozenset({"FullyQualifiedName", "Balance", "BalanceWithJobs", "V4IDPseudonym"})
    queryable = frozenset(
        {
            "displayname",
            "givenname",
            "middlename",
            "familyname",
            "companyname",
            "fullyqualifiedname",
            "active",
            "primaryemailaddr",
            "balance",
            "parentref",
            "job",
        }
    )

    def build(self, company, data, existing, include):
        display = _display_name(self, company, data, existing)
        record = dict(data)
        record["DisplayName"] = display
        active = _active(data, self.name)
        if not active and existing and existing.get("Active", True):
            open_balance = company.customer_open_balance(existing["Id"])
            if open_balance:
                raise errors.business_validation(
                    "Delete List Has Balance Error : You can't make this customer inactive "
                    f"while it has an open balance ({open_balance})."
                )
        record["Active"] = active
        parent = self.reference(company, data, "ParentRef", "Customer", name_field="DisplayName")
        fqn = display
        if parent:
            record["ParentRef"] = parent
            fqn = f"{company.live('Customer', parent['value'])['FullyQualifiedName']}:{display}"
            record.setdefault("Job", False)
        record["FullyQualifiedName"] = fqn
        for key, target, label in (
            ("SalesTermRef", "Term", "Name"),
            ("DefaultTaxCodeRef", "TaxCode", "Name"),
            ("ARAccountRef", "Account", "Name"),
        ):
            ref = self.reference(company, data, key, target, name_field=label)
            if ref:
                record[key] = ref
        record.setdefault("Taxable", False)
        record.setdefault("BillWithParent", False)
        record.setdefault("PreferredDeliveryMethod", "Print")
        balance = company.customer_open_balance(existing["Id"]) if existing else Decimal(0)
        record["Balance"] = balance
        record["BalanceWithJobs"] = balance
        record.setdefault("CurrencyRef", company.home_currency_ref())
        return record


def _display_name(
    spec: Entity, company: Books, data: dict[str, Any], existing: dict[str, Any] | None
) -> str:
    """The DisplayName of a Customer, Vendor or Employee: as sent, else made from the name
    parts (6080 when there are none); no colon, tab or newline; unique across the three
    lists, inactive records included (6240)."""
    for part in ("DisplayName", "PrintOnCheckName", *NAME_PARTS):
        spec.no_colon(data.get(part), part)
        if isinstance(data.get(part), str) and re.search(r"[\t\r\n]", data[part]):
            raise errors.invalid_string(
                part, f"Invalid String : {part} cannot contain a tab or newline."
            )
    display = data.get("DisplayName")
    if blank(display):
        parts = [str(data[p]).strip() for p in NAME_PARTS if not blank(data.get(p))]
        if not parts:
            raise errors.no_name_provided()
        display = " ".join(parts)
    display = str(display).strip()
    others = [name for name in NAME_NAMESPACE if name != spec.name]
    spec.unique_name(
        company, "DisplayName", display, existing, "customer, vendor or employee", others
    )
    return display


class Vendor(Entity):
    """A supplier (docs/qbo-api.md §B1); DisplayName shares the Customer/Employee namespace."""

    name = "Vendor"
    path = "vendor"
    name_list = True
    fields = words(
        """DisplayName Title GivenName MiddleName FamilyName Suffix CompanyName PrintOnCheckName
        Active TaxIdentifier AcctNum Vendor1099 BillAddr PrimaryPhone AlternatePhone Mobile Fax
        PrimaryEmailAddr WebAddr TermRef CurrencyRef APAccountRef OtherContactInfo
        BusinessNumber GSTIN GSTRegistrationType Source"""
    )
    read_only = frozenset({"Balance", "V4IDPseudonym"})
    # Filterable like Customer's name fields [I] (§4 lists no Vendor table).
    queryable = frozenset(
        {"displayname", "givenname", "familyname", "companyname", "active", "printoncheckname"}
    )

    def build(self, company, data, existing, include):
        record = dict(data, DisplayName=_display_name(self, company, data, existing))
        record["Active"] = _active(data, self.name)
        record.setdefault("PrintOnCheckName", record["DisplayName"])
        for key, target in (("TermRef", "Term"), ("APAccountRef", "Account")):
            ref = self.reference(company, data, key, target, name_field="Name")
            if ref:
                record[key] = ref
        record.setdefault("Vendor1099", False)
        record.setdefault("CurrencyRef", company.home_currency_ref())
        record["Balance"] = company.vendor_open_balance(existing["Id"]) if existing else Decimal(0)
        return record


class Employee(Entity):
    """Only what the name namespace needs: an employee's DisplayName takes a name too."""

    name = "Employee"
    path = "employee"
    name_list = True
    fields = words(
        """DisplayName Title GivenName MiddleName FamilyName Suffix PrintOnCheckName Active
        PrimaryEmailAddr PrimaryPhone EmployeeNumber"""
    )
    queryable = frozenset({"displayname", "givenname", "familyname", "active"})

    def build(self, company, data, existing, include):
        record = dict(data, DisplayName=_display_name(self, company, data, existing))
        record["Active"] = _active(data, self.name)
        return record


class Item(Entity):
    name = "Item"
    path = "item"
    name_list = True
    fields = words(
        """Name Type IncomeAccountRef ExpenseAccountRef AssetAccountRef UnitPrice PurchaseCost
        Description PurchaseDesc Taxable SalesTaxCodeRef PurchaseTaxCodeRef SalesTaxIncluded
        PurchaseTaxIncluded TrackQtyOnHand QtyOnHand InvStartDate Sku ParentRef SubItem Level
        Active ClassRef PrefVendorRef ReorderPoint AbatementRate ReverseChargeRate
        ServiceType ItemCategoryType Source SalesTaxInclusive PurchaseTaxInclusive"""
    )
    read_only = frozenset({"FullyQualifiedName"})
    queryable = frozenset(
        {"name", "type", "active", "sku", "fullyqualifiedname", "parentref", "unitprice"}
    )
    TYPES = ("Service", "NonInventory", "Inventory", "Category", "Group")

    def build(self, company, data, existing, include):
        name = data.get("Name")
        if blank(name):
            raise errors.required_param_missing("Name")
        name = str(name).strip()
        self.no_colon(name, "Name")
        if len(name) > 100:
            raise errors.invalid_string_length("Name", 100, len(name))
        self.unique_name(company, "Name", name, existing, "product or service")
        kind = data.get("Type") or "Service"  # PQB sends "Type": "" by default
        if kind not in self.TYPES:
            raise errors.invalid_enumeration("Type", kind)
        record = dict(data, Name=name, Type=kind, Active=_active(data, self.name))
        needs_income = kind in ("Service", "NonInventory", "Inventory")
        for key in ("IncomeAccountRef", "ExpenseAccountRef", "AssetAccountRef"):
            required = (key == "IncomeAccountRef" and needs_income) or (
                kind == "Inventory" and key != "IncomeAccountRef"
            )
            ref = self.reference(
                company, data, key, "Account", required=required, name_field="Name"
            )
            if ref:
                record[key] = ref
        if kind == "Inventory":
            for key in ("QtyOnHand", "InvStartDate"):
                if blank(data.get(key)):
                    raise errors.required_param_missing(key)
            record["TrackQtyOnHand"] = True
        for key in ("SalesTaxCodeRef", "PurchaseTaxCodeRef"):
            ref = self.reference(company, data, key, "TaxCode", name_field="Name")
            if ref:
                record[key] = ref
        for key in ("UnitPrice", "PurchaseCost", "QtyOnHand"):
            if data.get(key) is not None:
                record[key] = decimal_field(data[key], key, self.name)
        record.setdefault("UnitPrice", 0)
        parent = self.reference(company, data, "ParentRef", "Item", name_field="Name")
        record["FullyQualifiedName"] = name
        if parent:
            parent_name = company.live("Item", parent["value"])["FullyQualifiedName"]
            record.update(
                ParentRef=parent, SubItem=True, FullyQualifiedName=f"{parent_name}:{name}"
            )
        record.setdefault("Taxable", False)
        record.setdefault("TrackQtyOnHand", False)
        return record


#: AccountType → Classification, and common AccountSubType → AccountType (docs/qbo-api.md §3.3) [I].
ACCOUNT_TYPES = {
    "Bank": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Receivable": "Asset",
    "Equity": "Equity",
    "Expense": "Expense",
    "Other Expense": "Expense",
    "Cost of Goods Sold": "Expense",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Long Term Liability": "Liability",
    "Other Current Liability": "Liability",
    "Income": "Revenue",
    "Other Income": "Revenue",
}
ACCOUNT_SUBTYPES = {
    "ServiceFeeIncome": "Income",
    "SalesOfProductIncome": "Income",
    "OtherPrimaryIncome": "Income",
    "DiscountsRefundsGiven": "Income",
    "CashOnHand": "Bank",
    "Checking": "Bank",
    "Savings": "Bank",
    "UndepositedFunds": "Other Current Asset",
    "Inventory": "Other Current Asset",
    "AccountsReceivable": "Accounts Receivable",
    "SuppliesMaterialsCogs": "Cost of Goods Sold",
    "OfficeGeneralAdministrativeExpenses": "Expense",
    "SalesTaxPayable": "Other Current Liability",
    "AccountsPayable": "Accounts Payable",
}


class Account(Entity):
    name = "Account"
    path = "account"
    name_list = True
    fields = words(
        """Name AccountType AccountSubType AcctNum Description SubAccount ParentRef Active
        CurrencyRef TaxCodeRef AccountAlias TxnLocationType OpeningBalance
        OpeningBalanceDate"""
    )
    read_only = frozenset(
        {"FullyQualifiedName", "Classification", "CurrentBalance", "CurrentBalanceWithSubAccounts"}
    )
    queryable = frozenset(
        {
            "name",
            "accounttype",
            "accountsubtype",
            "active",
            "classification",
            "fullyqualifiedname",
            "acctnum",
            "currentbalance",
        }
    )

    def build(self, company, data, existing, include):
        name = data.get("Name")
        if blank(name):
            raise errors.required_param_missing("Name")
        name = str(name).strip()
        self.no_colon(name, "Name")
        self.unique_name(company, "Name", name, existing, "account")
        account_type = data.get("AccountType") or ACCOUNT_SUBTYPES.get(data.get("AccountSubType"))
        if account_type is None:
            raise errors.business_validation(
                "Invalid account type: you must select an account type (AccountType or a "
                "known AccountSubType)",
                element="AccountType",
                code="6010",
            )
        if account_type not in ACCOUNT_TYPES:
            raise errors.invalid_enumeration("AccountType", account_type)
        record = dict(data, Name=name, AccountType=account_type, Active=_active(data, self.name))
        record["Classification"] = ACCOUNT_TYPES[account_type]
        number = data.get("AcctNum")
        if not blank(number):
            number = str(number).strip()
            # At most 20 characters [I] (a PQB test comment), unique in the chart [I].
            if len(number) > 20:
                raise errors.invalid_string_length("AcctNum", 20, len(number))
            own_id = existing.get("Id") if existing else None
            for other in company.all_live(self.name):
                if other.get("Id") != own_id and str(other.get("AcctNum") or "") == number:
                    raise errors.business_validation(
                        f"Another account is already using the number {number}.", "AcctNum"
                    )
            record["AcctNum"] = number
        parent = self.reference(company, data, "ParentRef", "Account", name_field="Name")
        record["SubAccount"] = parent is not None
        record["FullyQualifiedName"] = name
        if parent:
            parent_name = company.live("Account", parent["value"])["FullyQualifiedName"]
            record.update(ParentRef=parent, FullyQualifiedName=f"{parent_name}:{name}")
        record["CurrentBalance"] = existing.get("CurrentBalance", 0) if existing else 0
        record["CurrentBalanceWithSubAccounts"] = record["CurrentBalance"]
        record.setdefault("CurrencyRef", company.home_currency_ref())
        return record


class Term(Entity):
    name = "Term"
    path = "term"
    name_list = True
    fields = words(
        """Name Active DueDays DiscountPercent DiscountDays DayOfMonthDue DueNextMonthDays
        DiscountDayOfMonth"""
    )
    read_only = frozenset({"Type"})
    queryable = frozenset({"name", "active", "duedays", "type"})

    def build(self, company, data, existing, include):
        name = data.get("Name")
        if blank(name):
            raise errors.required_param_missing("Name")
        name = str(name).strip()
        self.no_colon(name, "Name")
        if len(name) > 31:
            raise errors.invalid_string_length("Name", 31, len(name))
        self.unique_name(company, "Name", name, existing, "term")
        record = dict(data, Name=name, Active=_active(data, self.name))
        for key in (
            "DueDays",
            "DiscountDays",
            "DayOfMonthDue",
            "DueNextMonthDays",
            "DiscountDayOfMonth",
        ):
            if data.get(key) is not None:
                record[key] = integer_field(data[key], key, self.name)
        if data.get("DiscountPercent") is not None:
            record["DiscountPercent"] = decimal_field(
                data["DiscountPercent"], "DiscountPercent", self.name
            )
        record["Type"] = "DATE_DRIVEN" if "DayOfMonthDue" in record else "STANDARD"
        if record["Type"] == "STANDARD":
            record.setdefault("DueDays", 0)
        return record


class _ReadOnlyList(Entity):
    """Tax lists: read and query only; created through ``/taxservice/taxcode`` (§3.6)."""

    name_list = True
    creatable = False
    updatable = False
    cdc = False  # CDC does not support TaxCode, TaxRate, TaxAgency (§6.1)


class TaxCode(_ReadOnlyList):
    name = "TaxCode"
    path = "taxcode"
    queryable = frozenset({"name", "active", "taxable", "taxgroup"})


class TaxRate(_ReadOnlyList):
    name = "TaxRate"
    path = "taxrate"
    queryable = frozenset({"name", "active", "ratevalue", "agencyref"})


class TaxAgency(Entity):
    name = "TaxAgency"
    path = "taxagency"
    name_list = False  # TaxAgency has no Active flag
    updatable = False
    cdc = False
    fields = frozenset(
        {"DisplayName", "TaxTrackedOnSales", "TaxTrackedOnPurchases", "TaxRegistrationNumber"}
    )
    queryable = frozenset({"displayname"})

    def build(self, company, data, existing, include):
        name = data.get("DisplayName")
        if blank(name):
            raise errors.required_param_missing("DisplayName")
        self.unique_name(company, "DisplayName", str(name).strip(), existing, "tax agency")
        record = dict(data, DisplayName=str(name).strip())
        record.setdefault("TaxTrackedOnSales", True)
        record.setdefault("TaxTrackedOnPurchases", False)
        return record


def create_tax_code(company: Books, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /taxservice/taxcode``: a TaxCode with its TaxRates (docs/qbo-api.md §3.6).

    Body ``{"TaxCode": name, "TaxRateDetails": [{"TaxRateName", "RateValue", "TaxAgencyId",
    "TaxApplicableOn"} or {"TaxRateId"}]}``: new rates, or existing ones by id (PQB's
    ``TaxRateDetails`` has ``TaxRateId``). Answers the same shape plus ``TaxCodeId`` and each
    ``TaxRateId``. Everything is checked before anything is stored; code and rate names are
    unique [I].
    """
    code_name = body.get("TaxCode") if isinstance(body, dict) else None
    if blank(code_name):
        raise errors.required_param_missing("TaxCode")
    details = body.get("TaxRateDetails")
    if not isinstance(details, list) or not details:
        raise errors.required_param_missing("TaxRateDetails")
    TaxCode().unique_name(company, "Name", str(code_name), None, "tax code")
    planned: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []
    new_names: set[str] = set()
    for detail in details:
        if not isinstance(detail, dict):
            raise errors.unsupported_property("TaxRateDetails", "TaxService")
        applicable = detail.get("TaxApplicableOn", "Sales")
        if applicable not in ("Sales", "Purchase"):
            raise errors.invalid_enumeration("TaxRateDetails.TaxApplicableOn", applicable)
        if not blank(detail.get("TaxRateId")):
            rate = company.live("TaxRate", str(detail["TaxRateId"]))
            if rate is None:
                raise errors.invalid_reference(
                    "TaxRateDetails.TaxRateId", "TaxRate", detail["TaxRateId"]
                )
            planned.append((rate, {"TaxApplicableOn": applicable}))
            continue
        rate_name = detail.get("TaxRateName")
        if blank(rate_name):
            raise errors.required_param_missing("TaxRateDetails.TaxRateName")
        if detail.get("RateValue") is None:
            raise errors.required_param_missing("TaxRateDetails.RateValue")
        rate_value = decimal_field(detail["RateValue"], "RateValue", "TaxService")
        agency_id = detail.get("TaxAgencyId")
        if agency_id is None:
            raise errors.required_param_missing("TaxRateDetails.TaxAgencyId")
        agency_id = str(agency_id)
        if company.live("TaxAgency", agency_id) is None:
            raise errors.invalid_reference("TaxRateDetails.TaxAgencyId", "TaxAgency", agency_id)
        TaxRate().unique_name(company, "Name", str(rate_name), None, "tax rate")
        if str(rate_name).casefold() in new_names:
            raise errors.duplicate_name("tax rate")
        new_names.add(str(rate_name).casefold())
        planned.append(
            (
                None,
                {
                    "Name": str(rate_name),
                    "RateValue": rate_value,
                    "AgencyId": agency_id,
                    "TaxApplicableOn": applicable,
                },
            )
        )
    out_details = []
    rate_refs = []
    for existing, wanted in planned:
        rate = existing or company.insert(
            "TaxRate",
            {
                "Name": wanted["Name"],
                "Active": True,
                "RateValue": wanted["RateValue"],
                "AgencyRef": {"value": wanted["AgencyId"]},
                "SpecialTaxType": "NONE",
                "DisplayType": "ReadOnly",
            },
        )
        rate_refs.append(
            {
                "TaxRateRef": {"value": rate["Id"], "name": rate["Name"]},
                "TaxTypeApplicable": "TaxOnAmount",
                "TaxOrder": 0,
            }
        )
        out_details.append(
            {
                "TaxRateName": rate["Name"],
                "TaxRateId": rate["Id"],
                "RateValue": rate["RateValue"],
                "TaxAgencyId": rate["AgencyRef"]["value"],
                "TaxApplicableOn": wanted["TaxApplicableOn"],
            }
        )
    code = company.insert(
        "TaxCode",
        {
            "Name": str(code_name),
            "Description": str(code_name),
            "Active": True,
            "Taxable": True,
            "TaxGroup": len(rate_refs) > 1,
            "SalesTaxRateList": {"TaxRateDetail": rate_refs},
            "PurchaseTaxRateList": {"TaxRateDetail": []},
        },
    )
    return {"TaxCode": code["Name"], "TaxCodeId": code["Id"], "TaxRateDetails": out_details}
