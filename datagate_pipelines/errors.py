"""Typed errors an operator can act on: each names the portal, the record and the field."""

from __future__ import annotations


class DatagateError(Exception):
    """Base class for expected failures: the CLI prints them as one line, without a traceback."""


class PortalConfigError(DatagateError):
    """A problem in portals.yaml or in a portal's environment."""

    def __init__(self, portal_id: str | None, field: str, reason: str):
        self.portal_id = portal_id
        self.field = field
        self.reason = reason
        where = f"portal {portal_id}: " if portal_id else ""
        super().__init__(f"{where}{field}: {reason}")


class WarehouseError(DatagateError):
    """The warehouse cannot be reached or is not at the expected schema version."""


class ImportFileError(DatagateError):
    """An import file (CSV) that cannot be read at all; bad rows are reported, not raised."""
