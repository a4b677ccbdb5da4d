"""Telling people: email through the deployment's SMTP server, and JSON webhooks.

Who hears about a portal: its `notify` section in portals.yaml (operators' addresses, the
name of the variable holding a webhook URL), plus the deployment's own recipients from the
environment (`DATAGATE_NOTIFY_EMAIL`, `DATAGATE_NOTIFY_WEBHOOK_URL`), who hear about every
portal and about failed runs that belong to none. How mail leaves is the deployment's:
`DATAGATE_SMTP_*` (README, Configuration). Webhook URLs are secrets (a Slack or Teams
incoming webhook carries its token in the URL): never logged, never in an error.

The webhook body is JSON with `text` (subject and body, what Slack and Teams incoming
webhooks show) and the same facts as fields: `kind`, `portal`, `subject`, `body`, and for
failed runs `run_id` and `job`.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import dagster as dg
import httpx
from pydantic import Field

from datagate_pipelines import DatagateError
from datagate_pipelines.config import PortalSettings

WEBHOOK_TIMEOUT = 10.0
SMTP_TIMEOUT = 30.0
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}


class NotificationError(DatagateError):
    """A notification that could not be delivered (no secret in the message)."""


@dataclass
class Delivery:
    """Where a notification went, and where it could not go (and why)."""

    emailed: list[str] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)  # the variables' names, never the URLs
    errors: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.emailed or self.webhooks)


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


class NotifierResource(dg.ConfigurableResource):
    """Email and webhook delivery, configured per deployment (each field defaults to its
    environment variable, so a deployment sets the environment and nothing else)."""

    smtp_host: str | None = Field(default=None, description="default DATAGATE_SMTP_HOST")
    smtp_port: int | None = Field(
        default=None, description="default DATAGATE_SMTP_PORT, else 587 / 465 / 25 by security"
    )
    smtp_security: str | None = Field(
        default=None,
        description="starttls | ssl | none; default DATAGATE_SMTP_SECURITY, else starttls",
    )
    smtp_user: str | None = Field(default=None, description="default DATAGATE_SMTP_USER")
    smtp_password_env: str = Field(
        default="DATAGATE_SMTP_PASSWORD", description="the variable holding the SMTP password"
    )
    email_from: str | None = Field(default=None, description="default DATAGATE_NOTIFY_FROM")
    email_to: str | None = Field(
        default=None, description="comma-separated; default DATAGATE_NOTIFY_EMAIL"
    )
    webhook_url_env: str = Field(
        default="DATAGATE_NOTIFY_WEBHOOK_URL",
        description="the variable holding the deployment's webhook URL",
    )
    ui_url: str | None = Field(default=None, description="default DATAGATE_UI_URL, for links")

    # ------------------------------------------------------------------ settings

    def link(self, path: str) -> str | None:
        base = self.ui_url or _env("DATAGATE_UI_URL")
        return f"{base.rstrip('/')}/{path.lstrip('/')}" if base else None

    def recipients(self, portal: PortalSettings | None) -> list[str]:
        deployment = self.email_to or _env("DATAGATE_NOTIFY_EMAIL") or ""
        found = [a.strip() for a in deployment.split(",") if a.strip()]
        if portal is not None:
            found += portal.notify.email
        return sorted(set(found), key=found.index)

    def webhook_envs(self, portal: PortalSettings | None) -> list[str]:
        names = [self.webhook_url_env]
        if portal is not None and portal.notify.webhook_url_env:
            names.append(portal.notify.webhook_url_env)
        return [name for name in dict.fromkeys(names) if _env(name)]

    def configured(self, portal: PortalSettings | None) -> bool:
        mail = bool(self.recipients(portal)) and bool(self.smtp_host or _env("DATAGATE_SMTP_HOST"))
        return mail or bool(self.webhook_envs(portal))

    # ------------------------------------------------------------------ sending

    def send(
        self,
        portal: PortalSettings | None,
        subject: str,
        body: str,
        *,
        kind: str,
        facts: Mapping[str, Any] | None = None,
    ) -> Delivery:
        """Send to every channel of the portal (and the deployment's); each channel is tried
        even when another fails, and the failures are returned, not raised."""
        delivery = Delivery()
        recipients = self.recipients(portal)
        if recipients and (self.smtp_host or _env("DATAGATE_SMTP_HOST")):
            try:
                self._email(recipients, subject, body)
                delivery.emailed = recipients
            except (OSError, smtplib.SMTPException) as exc:
                delivery.errors.append(f"email to {', '.join(recipients)}: {exc}")
        payload = {
            "text": f"{subject}\n{body}",
            "kind": kind,
            "portal": portal.id if portal else None,
            "subject": subject,
            "body": body,
            **(facts or {}),
        }
        for name in self.webhook_envs(portal):
            try:
                response = httpx.post(str(_env(name)), json=payload, timeout=WEBHOOK_TIMEOUT)
                response.raise_for_status()
                delivery.webhooks.append(name)
            except httpx.HTTPStatusError as exc:
                delivery.errors.append(f"webhook {name}: answered {exc.response.status_code}")
            except httpx.HTTPError as exc:  # the URL stays out of the message
                delivery.errors.append(f"webhook {name}: {type(exc).__name__}")
        return delivery

    def _email(self, recipients: list[str], subject: str, body: str) -> None:
        host = self.smtp_host or _env("DATAGATE_SMTP_HOST")
        security = self.smtp_security or _env("DATAGATE_SMTP_SECURITY") or "starttls"
        if security not in DEFAULT_PORTS:
            raise NotificationError(f"DATAGATE_SMTP_SECURITY {security!r}: starttls, ssl or none")
        port = self.smtp_port or int(_env("DATAGATE_SMTP_PORT") or DEFAULT_PORTS[security])
        message = EmailMessage()
        message["From"] = (
            self.email_from or _env("DATAGATE_NOTIFY_FROM") or f"datagate@{socket.getfqdn()}"
        )
        message["To"] = ", ".join(recipients)
        message["Subject"] = subject
        message.set_content(body)
        user = self.smtp_user or _env("DATAGATE_SMTP_USER")
        context = ssl.create_default_context()
        smtp_class = smtplib.SMTP_SSL if security == "ssl" else smtplib.SMTP
        kwargs: dict[str, Any] = {"timeout": SMTP_TIMEOUT}
        if security == "ssl":
            kwargs["context"] = context
        with smtp_class(str(host), port, **kwargs) as server:
            if security == "starttls":
                server.starttls(context=context)
            if user:
                server.login(user, os.environ.get(self.smtp_password_env, ""))
            server.send_message(message)
