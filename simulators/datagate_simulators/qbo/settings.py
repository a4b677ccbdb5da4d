"""The QBO simulator's knobs: service behaviour, OAuth token lifetimes and throttle limits.

Plain dataclasses below everything else, so the backend, the OAuth server, the throttle and
the error bodies can all read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OAuthSettings", "QBOSettings", "ThrottleSettings"]


@dataclass
class OAuthSettings:
    """Token and code lifetimes in seconds (docs/qbo-api.md §1.3–1.4)."""

    access_token_ttl: float = 3600
    refresh_token_ttl: float = 8_726_400
    rotate_after: float = 24 * 3600
    grace: float = 24 * 3600
    code_ttl: float = 600


@dataclass
class ThrottleSettings:
    """Per-company limits (docs/qbo-api.md §8): a rolling window, concurrency, batches."""

    limit: int = 500
    window: float = 60.0
    max_concurrent: int = 10
    batch_limit: int = 40
    batch_window: float = 60.0


@dataclass
class QBOSettings:
    """Knobs of the simulated service; defaults follow docs/qbo-api.md."""

    utc_offset_hours: float = -7.0  # times are rendered like Intuit's (Pacific, -07:00) [I]
    query_max_results: int = 1000
    strict_query_properties: bool = True  # 4001 for WHERE/ORDER BY on a non-filterable field
    reject_duplicate_doc_numbers_when_auto: bool = False  # 6140 when CustomTxnNumbers is off
    cdc_lookback_days: int = 30
    cdc_max_objects: int = 1000
    batch_max_items: int = 30
    shuffle_batch: bool = False
    xml_throttle: bool = False  # 429 bodies in XML, as QBO has been seen to do (§8)
    lowercase_gateway_faults: bool = False  # 401/403/429 as {"fault":{"error":[…]}} (§7.2)
    # Outside the US QBO computes tax per rate; tax lines sent with an amount override it
    # (datagate sends its own per-line rounded tax this way). False: sent amounts ignored. [I]
    honour_sent_tax_lines: bool = True
    requestid_max_length: int = 50
    batch_requestid_max_length: int = 36
    oauth: OAuthSettings = field(default_factory=OAuthSettings)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
