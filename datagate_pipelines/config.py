"""portals.yaml: the one place that reads and validates portal configuration.

Each portal is validated on its own, so one bad entry is reported (portal, field, reason)
while the others keep working. Secrets never live in the file: it names environment
variables, and their values are wrapped in `SecretStr` so neither repr nor an error
message can show them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from datagate_pipelines import DatagateError

DEFAULT_PORTALS_FILE = "portals.yaml"
PORTAL_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_DOC_NUMBER = 21


class PortalConfigError(DatagateError):
    """A problem in portals.yaml or in a portal's environment."""

    def __init__(self, portal_id: str | None, field: str, reason: str):
        self.portal_id = portal_id
        self.field = field
        self.reason = reason
        where = f"portal {portal_id}: " if portal_id else ""
        super().__init__(f"{where}{field}: {reason}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_name(value: str) -> str:
    if not ENV_NAME_PATTERN.match(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _optional_env_name(value: str | None) -> str | None:
    return None if value is None else _env_name(value)


class ChangeFilter(_Strict):
    """How a HaloPSA list is asked for only the records changed since a time, and how its
    answer is checked (docs/operations.md, "Incremental sync"): unconfirmed names, so settings."""

    # The query parameter that takes the cutoff (UTC, `YYYY-MM-DDTHH:MM:SS`).
    param: str = Field(min_length=1)
    # The records' last-update field: a record older than the cutoff proves the filter ignored.
    stamp_field: str = Field(min_length=1)


class ChangeFilters(_Strict):
    """Per entity read incrementally; null turns it off (that list is then read whole)."""

    # Declared on /Client and /Site (lastupdatefromdate), proven only on other lists (§A6).
    clients: ChangeFilter | None = ChangeFilter(
        param="lastupdatefromdate", stamp_field="alastupdate"
    )
    sites: ChangeFilter | None = ChangeFilter(param="lastupdatefromdate", stamp_field="slastupdate")


class HaloPSASettings(_Strict):
    client_id_env: str
    client_secret_env: str
    tenant: str = ""
    authorization_server: str
    resource_server: str
    # Halo's documented limits disagree (300/450/700 per 5 minutes); 300 is the safe floor.
    rate_limit_requests: int = Field(300, gt=0)
    rate_limit_window_seconds: float = Field(300.0, gt=0)
    page_size: int = Field(100, gt=0, le=100)
    # Where Halo's behaviour is uncertain (docs/halopsa-api.md §9) it is configurable here.
    datagate_field_name: str = "Datagate"
    # Whether a credit note's lines carry positive amounts (the document type says "credit")
    # or negative ones: not documented (docs/halopsa-api.md §A4 [I]).
    credit_note_amounts: Literal["positive", "negative"] = "positive"
    # Incremental reads: the change-date filter of each list that has one (§A6).
    change_filters: ChangeFilters = Field(default_factory=ChangeFilters)

    _check_envs = field_validator("client_id_env", "client_secret_env")(_env_name)

    @field_validator("authorization_server", "resource_server")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")


class SyncSettings(_Strict):
    enable_product_sync: bool = True
    use_default_agreement: bool = True
    contract_types: list[int | str] = Field(default_factory=list)
    in_advance_months: Literal[0, 1] = 1
    use_site_zip_tax_for_new_customers: bool = True
    update_site: bool = True
    allow_pro_rata: bool = True
    synchronize_opening_balance: bool = False
    item_groups: list[int | str] = Field(default_factory=list)
    # HaloPSA's recurring-invoice `period` value for monthly billing: 2 in the one captured
    # payload (an inference, docs/halopsa-api.md §4.4), so it is a setting, not a constant.
    monthly_period_values: list[int] = Field(default_factory=lambda: [2])
    # A full sync (every entity read whole: deletions show only then) this often; the runs
    # between read only what changed where HaloPSA can filter by change date.
    full_every_days: int = Field(7, ge=1, le=90)
    # Incremental reads ask for changes since the last read less this margin (clock skew
    # between HaloPSA and us, records saved while the last read was paging).
    incremental_overlap_minutes: int = Field(60, ge=0, le=24 * 60)


class InvoicingSettings(_Strict):
    number_prefix: str = ""
    next_number: int = Field(1001, ge=1)
    payment_terms_days: int = Field(30, ge=0, le=365)
    # manual: a closed period waits, ready for review, until `datagate approve`; auto: the
    # nightly run finalizes, numbers and exports it by itself (docs/operations.md, "Review and approve a period").
    approval: Literal["manual", "auto"] = "manual"
    # docs/billing.md rule 6: a product's dates changed after its months were billed on a
    # final invoice are corrected on the agreement's next invoice by credit and re-bill
    # lines; false keeps the old behaviour (changes count from the next unbilled month).
    credit_past_changes: StrictBool = True  # a stray "maybe" or 2 is an error, not true

    @model_validator(mode="after")
    def _doc_number_fits(self) -> InvoicingSettings:
        if len(self.number_prefix) + len(str(self.next_number)) > MAX_DOC_NUMBER:
            raise ValueError(
                f"number_prefix + next_number is longer than QBO's {MAX_DOC_NUMBER}-character DocNumber"
            )
        return self


class ReviewSettings(_Strict):
    """When the variance review flags an invoice, and when a waiting period is reminded."""

    # An invoice whose total moved by more than this percentage, or this amount, since the
    # agreement's previous invoice is flagged.
    flag_change_percent: Decimal = Field(Decimal("20"), ge=0, max_digits=9, decimal_places=2)
    flag_change_amount: Decimal = Field(Decimal("500.00"), ge=0, max_digits=14, decimal_places=2)
    # A period waiting for approval longer than this reminds the portal's operators.
    remind_after_days: int = Field(3, ge=1, le=90)


class NotifySettings(_Strict):
    """Who hears about a period waiting for approval and about failed runs of the portal."""

    email: list[str] = Field(default_factory=list)
    # The name of the environment variable holding a webhook URL (a Slack or Teams incoming
    # webhook, or any receiver of a JSON POST): the URL is a secret, so not in this file.
    webhook_url_env: str | None = None

    @field_validator("email")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
                raise ValueError(f"{address!r} is not an email address")
        return value

    @field_validator("webhook_url_env")
    @classmethod
    def _webhook_env(cls, value: str | None) -> str | None:
        return None if value is None else _env_name(value)


class QBOSettings(_Strict):
    realm_id: str
    client_id_env: str
    client_secret_env: str
    refresh_token_env: str
    base_url: str = "https://quickbooks.api.intuit.com"
    token_url: str = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    revoke_url: str = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
    authorize_url: str = "https://appcenter.intuit.com/connect/oauth2"
    redirect_uri: str = "http://127.0.0.1:8765/callback"
    minor_version: int = Field(75, ge=75)
    income_account: str = "Services"
    # Per item-group (HaloPSA asset group id or name) income account overrides.
    income_accounts: dict[str, str] = Field(default_factory=dict)
    rate_limit_requests: int = Field(500, gt=0)
    rate_limit_window_seconds: float = Field(60.0, gt=0)
    # Batch requests per the same window (QBO: 40 a minute, besides the 500 requests).
    batch_rate_limit_requests: int = Field(40, gt=0)
    max_concurrent: int = Field(10, gt=0)
    batch_size: int = Field(30, gt=0, le=30)
    # The chart of accounts (docs/operations.md, "Chart of accounts"): HaloPSA nominal codes
    # map to QBO accounts by AcctNum or name, before the per-group and default accounts.
    use_nominal_codes: bool = True
    # Nominal code → QBO account (name or AcctNum), where the code itself matches nothing.
    nominal_accounts: dict[str, str] = Field(default_factory=dict)
    # Purchases: the expense account of PO and bill lines without a mapped nominal code,
    # per item group (HaloPSA asset group id or name), and the payable account.
    expense_account: str = "Cost of Goods Sold"
    expense_accounts: dict[str, str] = Field(default_factory=dict)
    ap_account: str = "Accounts Payable (A/P)"
    # us_automated: TAX/NON per line and our tax as the total (US companies); tax_codes:
    # our tax table's codes and rates created in QBO, a TaxCode per line (other countries).
    tax_mode: Literal["us_automated", "tax_codes"] = "us_automated"
    # tax_codes mode: the QBO tax code of lines we did not tax (it must exist in QBO).
    exempt_tax_code: str = "Exempt"
    # The environment variable holding the Intuit app's webhook verifier token (the key of
    # `intuit-signature`, docs/qbo-api.md §6.2); without it this realm's webhooks are refused.
    webhook_verifier_token_env: str | None = None

    _check_envs = field_validator("client_id_env", "client_secret_env", "refresh_token_env")(
        _env_name
    )
    _check_optional_envs = field_validator("webhook_verifier_token_env")(_optional_env_name)

    @field_validator("realm_id")
    @classmethod
    def _realm(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError("must be the QBO company id (digits only)")
        return value


#: What a HaloPSA purchase order status means to the export (docs/halopsa-api.md §A2: the
#: integers are undocumented, so the mapping is a setting).
PurchaseOrderMeaning = Literal[
    "draft", "awaiting_approval", "approved", "sent", "received", "closed", "cancelled"
]
#: Our default reading of HaloPSA's PO `status` integers: unconfirmed, check it against a
#: live tenant (docs/operations.md, "Purchase orders").
DEFAULT_PO_STATUSES: dict[int, PurchaseOrderMeaning] = {
    0: "draft",
    1: "awaiting_approval",
    2: "approved",
    3: "sent",
    4: "received",
    5: "closed",
    6: "cancelled",
}


class PurchasingSettings(_Strict):
    """Suppliers and purchase orders into QBO; without this section they are not read."""

    statuses: dict[int, PurchaseOrderMeaning] = Field(
        default_factory=lambda: dict(DEFAULT_PO_STATUSES)
    )
    # `goodsin_status` values that mean every line was received (unconfirmed, §A2).
    received_goodsin_statuses: list[int] = Field(default_factory=lambda: [2])
    # PO line field names: HaloPSA's spec gives none for the ordered quantity and unit cost
    # (§A2), so they are settings; the defaults are the simulator's choice.
    quantity_field: str = "quantity"
    unit_cost_field: str = "unit_cost"
    # HaloPSA `currency_code` → ISO code; 1 and unset mean the portal's currency.
    currencies: dict[int, str] = Field(default_factory=dict)
    # Write each linked QBO vendor id back to the supplier's `accounts_id` in HaloPSA.
    write_vendor_ids: bool = False


class PaymentSettings(_Strict):
    """Payments read back from QBO and recorded on the HaloPSA invoices we exported."""

    # Record each QBO payment on its HaloPSA invoice (/api/InvoicePayment). A portal uses
    # this or HaloPSA's own QBO sync, never both: two writers would record payments twice.
    halopsa_write_back: bool = True
    # HaloPSA's InvoicePayment.method is an id from the tenant's payment-method list, whose
    # values are unconfirmed (docs/halopsa-api.md §A5): the default for payments, the one for
    # applied credit memos, and per QBO payment method name (PaymentMethodRef.name).
    halopsa_method: int = 0
    halopsa_credit_method: int = 0
    halopsa_methods: dict[str, int] = Field(default_factory=dict)


class PortalSettings(_Strict):
    id: str
    name: str
    currency: str = "USD"
    billing_start: date
    halopsa: HaloPSASettings
    sync: SyncSettings = Field(default_factory=SyncSettings)
    invoicing: InvoicingSettings = Field(default_factory=InvoicingSettings)
    payments: PaymentSettings = Field(default_factory=PaymentSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    qbo: QBOSettings | None = None
    purchasing: PurchasingSettings | None = None

    @property
    def export_targets(self) -> tuple[str, ...]:
        """Where final invoices go: HaloPSA always, QBO when the portal has a qbo section."""
        return ("halopsa", "qbo") if self.qbo is not None else ("halopsa",)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        # Portal ids are Dagster partition keys: no commas or pipes, ever.
        if not PORTAL_ID_PATTERN.match(value):
            raise ValueError("must match [a-z0-9-]+ (it is a Dagster partition key)")
        return value

    @field_validator("billing_start", mode="before")
    @classmethod
    def _month(cls, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}", value.strip()):
            return f"{value.strip()}-01"
        return value

    @field_validator("billing_start")
    @classmethod
    def _first_of_month(cls, value: date) -> date:
        return value.replace(day=1)


@dataclass(frozen=True)
class HaloPSACredentials:
    client_id: str
    client_secret: SecretStr


@dataclass(frozen=True)
class QBOCredentials:
    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr


@dataclass(frozen=True)
class Portal:
    """A validated portal: its settings plus accessors for its secrets."""

    settings: PortalSettings

    @property
    def id(self) -> str:
        return self.settings.id

    def halopsa_credentials(self, environ: Mapping[str, str] | None = None) -> HaloPSACredentials:
        env = os.environ if environ is None else environ
        halo = self.settings.halopsa
        return HaloPSACredentials(
            client_id=_require_env(env, self.id, "halopsa.client_id_env", halo.client_id_env),
            client_secret=SecretStr(
                _require_env(env, self.id, "halopsa.client_secret_env", halo.client_secret_env)
            ),
        )

    def qbo_credentials(self, environ: Mapping[str, str] | None = None) -> QBOCredentials:
        env = os.environ if environ is None else environ
        qbo = self.settings.qbo
        if qbo is None:
            raise PortalConfigError(self.id, "qbo", "no qbo section: QBO export is off")
        return QBOCredentials(
            client_id=_require_env(env, self.id, "qbo.client_id_env", qbo.client_id_env),
            client_secret=SecretStr(
                _require_env(env, self.id, "qbo.client_secret_env", qbo.client_secret_env)
            ),
            refresh_token=SecretStr(
                _require_env(env, self.id, "qbo.refresh_token_env", qbo.refresh_token_env)
            ),
        )

    def webhook_verifier_token(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        """The QBO app's webhook verifier token; None when the portal names no variable."""
        qbo = self.settings.qbo
        if qbo is None or qbo.webhook_verifier_token_env is None:
            return None
        env = os.environ if environ is None else environ
        return SecretStr(
            _require_env(
                env, self.id, "qbo.webhook_verifier_token_env", qbo.webhook_verifier_token_env
            )
        )


def _require_env(env: Mapping[str, str], portal_id: str, field_path: str, name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise PortalConfigError(portal_id, field_path, f"environment variable {name} is not set")
    return value


@dataclass
class PortalRegistry:
    """Every portal in the file: the valid ones, and the errors of the others."""

    path: Path
    portals: dict[str, Portal] = field(default_factory=dict)
    errors: list[PortalConfigError] = field(default_factory=list)

    def get(self, portal_id: str) -> Portal:
        if portal_id in self.portals:
            return self.portals[portal_id]
        for error in self.errors:
            if error.portal_id == portal_id:
                raise error
        raise PortalConfigError(portal_id, "id", f"no such portal in {self.path}")

    @property
    def ids(self) -> list[str]:
        return sorted(self.portals)


def portals_file_path(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get("DATAGATE_PORTALS_FILE") or DEFAULT_PORTALS_FILE)


def load_portals(path: str | os.PathLike[str] | None = None) -> PortalRegistry:
    """Read portals.yaml. File-level problems raise; per-portal problems are collected."""
    file_path = portals_file_path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PortalConfigError(
            None, "file", f"{file_path} not found (set DATAGATE_PORTALS_FILE)"
        ) from None
    return parse_portals(text, file_path)


def parse_portals(text: str, path: Path | str = DEFAULT_PORTALS_FILE) -> PortalRegistry:
    registry = PortalRegistry(path=Path(path))
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise PortalConfigError(None, "file", _yaml_problem(path, exc)) from None
    if not isinstance(document, dict) or not isinstance(document.get("portals"), list):
        raise PortalConfigError(None, "portals", f"{path} must contain a 'portals:' list")
    unknown = sorted(set(document) - {"portals"})
    if unknown:
        raise PortalConfigError(None, unknown[0], f"unknown top-level field in {path}")

    for index, entry in enumerate(document["portals"]):
        label = entry.get("id") if isinstance(entry, dict) else None
        label = str(label) if label else f"#{index + 1}"
        if not isinstance(entry, dict):
            registry.errors.append(PortalConfigError(label, "-", "each portal must be a mapping"))
            continue
        try:
            settings = PortalSettings.model_validate(entry)
        except ValidationError as exc:
            registry.errors.extend(_portal_errors(label, exc))
            continue
        if settings.id in registry.portals:
            registry.errors.append(PortalConfigError(label, "id", "duplicate portal id"))
            continue
        registry.portals[settings.id] = Portal(settings)
    return registry


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key repeated in one mapping (PyYAML keeps the last
    one silently: a second `billing_start:` would quietly win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, str | int | float | bool | date) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"the key {key!r} is repeated",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(path: Path | str, exc: yaml.YAMLError) -> str:
    """`<path> is not valid YAML at line L, column C: <the parser's reason> (<context> at …)`."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    within = ""
    if context and context_mark and context_mark is not mark:
        within = f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    return f"{path} is not valid YAML{where}: {problem}{within}"


def _portal_errors(label: str, exc: ValidationError) -> list[PortalConfigError]:
    errors = []
    for problem in exc.errors(include_input=False, include_url=False):
        field_path = ".".join(str(part) for part in problem["loc"]) or "-"
        reason = problem["msg"]
        if problem["type"] == "extra_forbidden":
            reason = "unknown field"
        elif problem["type"] == "missing":
            reason = "required field is missing"
        errors.append(PortalConfigError(label, field_path, reason))
    return errors
