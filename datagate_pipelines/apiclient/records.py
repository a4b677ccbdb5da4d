"""What the request log stores of each HTTP attempt, and the counters asset metadata shows."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class ApiRequestRecord:
    """One HTTP attempt, as the request log stores it. Never holds a secret."""

    system: str
    portal: str
    run_id: str | None
    method: str
    path: str
    params: dict[str, str]
    status: int | None
    duration_ms: float
    attempt: int
    error: str | None
    started_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestRecorder(Protocol):
    """Receives an `ApiRequestRecord` for every attempt, failed ones and token requests too."""

    def __call__(self, record: ApiRequestRecord, /) -> None: ...


@dataclass
class ClientStats:
    """Counters for asset metadata. `calls` counts every HTTP attempt, token requests too."""

    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    token_fetches: int = 0
    pages: int = 0
    rows: int = 0
    duplicate_rows: int = 0
    throttle_wait_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, amount in counts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
        values["throttle_wait_seconds"] = round(values["throttle_wait_seconds"], 3)
        return values
