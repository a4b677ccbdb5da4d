"""The rotating QBO refresh-token store: one row per portal in `qbo_tokens`, encrypted.

QBO rotates refresh tokens (docs/qbo-api.md §1.4): a refresh may answer with a new refresh
token, and the old one dies a grace window (24 h) later. A token that is lost is a company
that must be reconnected by hand, so this store keeps them like money:

- The refresh token in portals.yaml (its environment variable) is only the first one. Every
  token is stored Fernet-encrypted (key: `DATAGATE_TOKEN_KEY`), access tokens too.
- A refresh happens inside one database transaction that holds the portal's row
  (`SELECT … FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` — SQLite's single writer): take
  the lock, re-read the row (another process may have refreshed meanwhile: then its access
  token is used), call the token endpoint, write the new refresh token with the one it
  replaced as `previous_refresh_token`, commit — and only then hand out the access token.
  Two processes never both refresh, so neither can rotate the other's token away.
- A crash at any point loses nothing: before the commit the row still holds the token that
  was sent, and QBO answers a repeated refresh with it during the grace window with the
  same new token; after the commit the new one is stored.
- When the stored token is refused (`invalid_grant`) the previous one is tried, then
  portals.yaml's; when all are refused the error says to reconnect:
  `datagate qbo connect --portal P`.

Generate a key once and keep it with the other secrets (losing it means reconnecting):

    python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"

To change keys, set `DATAGATE_TOKEN_KEY=new,old`: the first encrypts, any decrypts.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from datagate_pipelines import DatagateError
from datagate_pipelines.apiclient.records import ApiRequestRecord
from datagate_pipelines.config import Portal, PortalConfigError, QBOSettings
from datagate_pipelines.qbo.errors import QBOInvalidGrantError
from datagate_pipelines.qbo.oauth import QBOAuthClient, TokenSet
from datagate_pipelines.warehouse.models import qbo_tokens

logger = logging.getLogger(__name__)

TOKEN_KEY_ENV = "DATAGATE_TOKEN_KEY"
#: Test hook: the name of a step at which the process kills itself (SIGKILL), so the tests
#: can prove that a crash between any two steps loses no token. See `STEPS`.
CRASH_AT_ENV = "DATAGATE_QBO_TOKENS_CRASH_AT"
STEPS = ("seeded", "locked", "refreshed", "written", "committed")
#: Retries of a token request made while the row is locked.
LOCKED_RETRY_ATTEMPTS = 3
LOCKED_RETRY_SECONDS = 15.0
KEY_HELP = (
    'generate one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


class TokenKeyError(DatagateError):
    """`DATAGATE_TOKEN_KEY` is missing or wrong: tokens cannot be stored or read."""


class ReconnectRequiredError(DatagateError):
    """QBO refused every refresh token this portal has: a person must connect it again."""

    def __init__(self, portal_id: str, reason: str):
        self.portal_id = portal_id
        super().__init__(
            f"portal {portal_id}: {reason}; reconnect the portal: "
            f"`datagate qbo connect --portal {portal_id}`"
        )


def _checkpoint(step: str) -> None:
    if os.environ.get(CRASH_AT_ENV) == step:
        # As abrupt as a power cut: no cleanup, no rollback, no atexit.
        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------------------
# Encryption
# ---------------------------------------------------------------------------------------


class TokenCipher:
    """Fernet encryption of tokens at rest. `key` is one key or several, comma-separated
    (the first encrypts, any of them decrypts); None reads `DATAGATE_TOKEN_KEY`, and
    complains only when a token must actually be encrypted or decrypted."""

    def __init__(self, key: str | None = None, *, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        self._key = key if key is not None else env.get(TOKEN_KEY_ENV, "")
        self._fernet: MultiFernet | None = None

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def _cipher(self) -> MultiFernet:
        if self._fernet is None:
            keys = [k.strip() for k in self._key.split(",") if k.strip()]
            if not keys:
                raise TokenKeyError(
                    f"{TOKEN_KEY_ENV} is not set: QBO tokens are stored encrypted; {KEY_HELP}"
                )
            try:
                self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
            except (ValueError, TypeError):
                raise TokenKeyError(
                    f"{TOKEN_KEY_ENV} is not a Fernet key (32 url-safe base64 bytes); {KEY_HELP}"
                ) from None
        return self._fernet

    def check(self) -> None:
        """Raise `TokenKeyError` now if no usable key is configured."""
        self._cipher()

    def encrypt(self, token: str) -> str:
        return self._cipher().encrypt(token.encode()).decode()

    def decrypt(self, stored: str, *, portal_id: str = "?") -> str:
        try:
            return self._cipher().decrypt(stored.encode()).decode()
        except InvalidToken:
            raise TokenKeyError(
                f"portal {portal_id}: the stored QBO tokens cannot be decrypted with "
                f"{TOKEN_KEY_ENV} (was the key changed? list the old key after the new one, "
                "comma-separated, or reconnect the portal)"
            ) from None


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredTokens:
    """A portal's row, decrypted. Its repr shows no token."""

    portal_id: str
    realm_id: str
    refresh_token: str = field(repr=False)
    refresh_token_issued_at: datetime
    previous_refresh_token: str | None = field(repr=False)
    previous_replaced_at: datetime | None
    access_token: str | None = field(repr=False)
    access_token_expires_at: datetime | None
    refresh_token_expires_at: datetime | None
    source: str | None
    version: int
    updated_at: datetime


class _DeferredRecords:
    """Holds request records while the token row is locked, then hands them on.

    On SQLite the lock is the database's single write lock: a request recorder that wrote
    to the warehouse from inside it would wait for itself.
    """

    def __init__(self) -> None:
        self.records: list[ApiRequestRecord] = []

    def __call__(self, record: ApiRequestRecord, /) -> None:
        self.records.append(record)


class QBOTokenStore:
    """Access tokens for one portal's QBO company, from the rotating refresh tokens stored
    in `qbo_tokens` (an `AccessTokens` source for `QBOClient`). Thread-safe; safe across
    processes (see the module docstring).

    `initial_refresh_token` is portals.yaml's (from its environment variable): used to seed
    the row and as the last fallback. `margin_seconds`: access tokens are refreshed this
    long before they expire.
    """

    def __init__(
        self,
        engine: Engine,
        portal_id: str,
        realm_id: str,
        oauth: QBOAuthClient,
        *,
        initial_refresh_token: Any = None,
        initial_refresh_token_env: str | None = None,
        cipher: TokenCipher | None = None,
        margin_seconds: float = 300.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.engine = engine
        self.portal_id = portal_id
        self.realm_id = str(realm_id)
        self.oauth = oauth
        initial = getattr(
            initial_refresh_token, "get_secret_value", lambda: initial_refresh_token
        )()
        self._initial: str | None = initial or None
        self._initial_env = initial_refresh_token_env
        if self._initial:
            oauth.redact.add(self._initial)
        self.cipher = cipher or TokenCipher()
        self.margin = timedelta(seconds=margin_seconds)
        self.now = now
        self._lock = threading.RLock()
        self._cached: tuple[str, datetime] | None = None
        self._rejected: deque[str] = deque(maxlen=32)
        #: How many times this store called the token endpoint successfully.
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"QBOTokenStore(portal={self.portal_id!r}, realm_id={self.realm_id!r})"

    def close(self) -> None:
        """Close the OAuth client's connection pool."""
        self.oauth.close()

    # -- AccessTokens ----------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid access token: the one in memory, else the stored one, else a new one
        (refreshed under the row lock; the rotated refresh token committed before return)."""
        with self._lock:
            if self._cached is not None and self._fresh(*self._cached):
                return self._cached[0]
            row = self.stored()
            if row is not None and self._usable(row):
                return self._remember(row.access_token, row.access_token_expires_at)  # type: ignore[arg-type]
            return self._refresh()

    def invalidate(self, access_token: str) -> None:
        """The API refused `access_token` (401): never hand it out again."""
        with self._lock:
            self._rejected.append(access_token)
            if self._cached is not None and self._cached[0] == access_token:
                self._cached = None

    def refresh(self) -> str:
        """Refresh now, whatever the stored access token's expiry; the new access token."""
        with self._lock:
            if self._cached is not None:
                self._rejected.append(self._cached[0])
                self._cached = None
            return self._refresh(force=True)

    # -- reading ---------------------------------------------------------------------------

    def stored(self, connection: Connection | None = None) -> StoredTokens | None:
        """The portal's row, decrypted (None when there is none). Given the connection of
        a transaction, the row is read under its lock (`SELECT … FOR UPDATE`)."""
        query = select(qbo_tokens).where(qbo_tokens.c.portal_id == self.portal_id)
        if connection is None:
            with self.engine.connect() as own:
                row = own.execute(query).mappings().first()
        else:
            row = connection.execute(query.with_for_update()).mappings().first()
        if row is None:
            return None

        def plain(value: str | None, *, transient: bool = False) -> str | None:
            return None if value is None else self._decrypt(value, transient=transient)

        return StoredTokens(
            portal_id=row["portal_id"],
            realm_id=row["realm_id"],
            refresh_token=self._decrypt(row["refresh_token"]),
            refresh_token_issued_at=row["refresh_token_issued_at"],
            previous_refresh_token=plain(row["previous_refresh_token"]),
            previous_replaced_at=row["previous_replaced_at"],
            access_token=plain(row["access_token"], transient=True),
            access_token_expires_at=row["access_token_expires_at"],
            refresh_token_expires_at=row["refresh_token_expires_at"],
            source=row["source"],
            version=row["version"],
            updated_at=row["updated_at"],
        )

    def _decrypt(self, value: str, *, transient: bool = False) -> str:
        token = self.cipher.decrypt(value, portal_id=self.portal_id)
        self.oauth.redact.add(token, transient=transient)
        return token

    def _fresh(self, token: str | None, expires_at: datetime | None) -> bool:
        return (
            token is not None
            and expires_at is not None
            and token not in self._rejected
            and self.now() < expires_at - self.margin
        )

    def _usable(self, row: StoredTokens) -> bool:
        return row.realm_id == self.realm_id and self._fresh(
            row.access_token, row.access_token_expires_at
        )

    def _remember(self, token: str, expires_at: datetime) -> str:
        self._cached = (token, expires_at)
        return token

    # -- refreshing ------------------------------------------------------------------------

    @contextmanager
    def _row_lock(self) -> Iterator[Connection]:
        """A transaction that holds the portal's row: committed when the block ends."""
        with self.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # SQLite locks the database, not a row: take the write lock up front, so the
                # re-read below already sees the last committed refresh.
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.rollback()
                raise
            connection.commit()

    def _seed(self) -> None:
        """Make sure the row exists (so there is something to lock), from portals.yaml."""
        if self.stored() is not None:
            return
        if not self._initial:
            where = f" and {self._initial_env} is not set" if self._initial_env else ""
            raise ReconnectRequiredError(self.portal_id, f"no QBO refresh token is stored{where}")
        now = self.now()
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(qbo_tokens).values(
                        portal_id=self.portal_id,
                        realm_id=self.realm_id,
                        refresh_token=self.cipher.encrypt(self._initial),
                        refresh_token_issued_at=now,
                        version=0,
                        updated_at=now,
                        source="portals.yaml",
                    )
                )
        except IntegrityError:
            pass  # another process seeded it first: same token, nothing lost
        _checkpoint("seeded")

    def _refresh(self, *, force: bool = False) -> str:
        self._seed()
        deferred = _DeferredRecords()
        recorder, self.oauth.recorder = self.oauth.recorder, deferred
        # The row lock is held while the token endpoint is retried: keep that short (on
        # SQLite every other writer waits, 30 s at most, for it).
        policy = self.oauth.retry_policy
        self.oauth.retry_policy = policy.replace(
            max_attempts=min(policy.max_attempts, LOCKED_RETRY_ATTEMPTS),
            max_elapsed=min(policy.max_elapsed, LOCKED_RETRY_SECONDS),
        )
        try:
            with self._row_lock() as connection:
                _checkpoint("locked")
                row = self.stored(connection)
                if row is None:  # forgotten (disconnected) meanwhile
                    raise ReconnectRequiredError(self.portal_id, "the QBO connection was removed")
                if not force and self._usable(row):
                    # Another process refreshed while this one waited for the lock.
                    return self._remember(row.access_token, row.access_token_expires_at)  # type: ignore[arg-type]
                sent, tokens = self._refresh_with_candidates(row)
                _checkpoint("refreshed")
                self._write(connection, row, sent, tokens)
                _checkpoint("written")
        finally:
            self.oauth.recorder = recorder
            self.oauth.retry_policy = policy
            if recorder is not None:
                for record in deferred.records:
                    recorder(record)
        _checkpoint("committed")
        self.refreshes += 1
        return self._remember(tokens.access_token, tokens.access_token_expires_at)

    def _candidates(self, row: StoredTokens) -> list[tuple[str, str]]:
        """(label, refresh token) to try, best first, without repeats."""
        candidates: list[tuple[str, str]] = []
        if row.realm_id == self.realm_id:
            candidates.append(("the stored refresh token", row.refresh_token))
            if row.previous_refresh_token:
                candidates.append(("the previous one", row.previous_refresh_token))
        else:
            logger.warning(
                "qbo portal %s: the stored tokens are for company %s, portals.yaml says %s; "
                "using portals.yaml's refresh token",
                self.portal_id, row.realm_id, self.realm_id,
            )  # fmt: skip
        if self._initial:
            label = (
                f"portals.yaml's ({self._initial_env})" if self._initial_env else "portals.yaml's"
            )
            candidates.append((label, self._initial))
        unique: list[tuple[str, str]] = []
        for label, token in candidates:
            if all(token != seen for _, seen in unique):
                unique.append((label, token))
        return unique

    def _refresh_with_candidates(self, row: StoredTokens) -> tuple[str, TokenSet]:
        refused: list[str] = []
        for label, token in self._candidates(row):
            try:
                return token, self.oauth.refresh(token)
            except QBOInvalidGrantError:
                logger.warning(
                    "qbo portal %s: QBO refused %s (invalid_grant)", self.portal_id, label
                )
                refused.append(label)
        what = ", ".join(refused) if refused else "no refresh token"
        raise ReconnectRequiredError(self.portal_id, f"QBO refused {what}")

    def _write(
        self, connection: Connection, row: StoredTokens, sent: str, tokens: TokenSet
    ) -> None:
        now = self.now()
        new = tokens.refresh_token
        values: dict[str, Any] = {
            "realm_id": self.realm_id,
            "access_token": self.cipher.encrypt(tokens.access_token),
            "access_token_expires_at": tokens.access_token_expires_at,
            "refresh_token_expires_at": tokens.refresh_token_expires_at,
            "version": row.version + 1,
            "updated_at": now,
        }
        current = row.refresh_token if row.realm_id == self.realm_id else None
        # Written again even when unchanged: re-encrypted with the newest key.
        values["refresh_token"] = self.cipher.encrypt(new)
        if row.previous_refresh_token is not None:
            values["previous_refresh_token"] = self.cipher.encrypt(row.previous_refresh_token)
        if new != current:
            # Rotated (or a fallback worked): the token sent stays valid for QBO's grace
            # window, so it is the one to fall back to; the refused current one is not.
            previous = sent if sent != new else None
            values.update(
                refresh_token=self.cipher.encrypt(new),
                refresh_token_issued_at=now,
                previous_refresh_token=None if previous is None else self.cipher.encrypt(previous),
                previous_replaced_at=now if previous is not None else None,
                source="refresh",
            )
            logger.info("qbo portal %s: stored a new (rotated) refresh token", self.portal_id)
        connection.execute(
            update(qbo_tokens).where(qbo_tokens.c.portal_id == self.portal_id).values(**values)
        )

    # -- connect / disconnect --------------------------------------------------------------

    def save_connection(self, tokens: TokenSet, *, source: str = "connect") -> None:
        """Store the tokens of a new connection (the OAuth code exchange), committed before
        they are used; any earlier tokens of the portal are replaced."""
        now = self.now()
        encrypted = {
            "realm_id": self.realm_id,
            "refresh_token": self.cipher.encrypt(tokens.refresh_token),
            "refresh_token_issued_at": now,
            "previous_refresh_token": None,
            "previous_replaced_at": None,
            "access_token": self.cipher.encrypt(tokens.access_token),
            "access_token_expires_at": tokens.access_token_expires_at,
            "refresh_token_expires_at": tokens.refresh_token_expires_at,
            "source": source,
            "updated_at": now,
        }
        with self._lock:
            self.oauth.redact.add(tokens.refresh_token)
            self.oauth.redact.add(tokens.access_token, transient=True)
            with self._row_lock() as connection:
                existing = connection.execute(
                    select(qbo_tokens.c.version)
                    .where(qbo_tokens.c.portal_id == self.portal_id)
                    .with_for_update()
                ).scalar()
                if existing is None:
                    connection.execute(
                        insert(qbo_tokens).values(portal_id=self.portal_id, version=1, **encrypted)
                    )
                else:
                    connection.execute(
                        update(qbo_tokens)
                        .where(qbo_tokens.c.portal_id == self.portal_id)
                        .values(version=existing + 1, **encrypted)
                    )
            self._rejected.clear()
            self._remember(tokens.access_token, tokens.access_token_expires_at)

    def forget(self) -> bool:
        """Delete the portal's tokens (after a disconnect); whether there were any."""
        with self._lock, self._row_lock() as connection:
            self._cached = None
            result = connection.execute(
                delete(qbo_tokens).where(qbo_tokens.c.portal_id == self.portal_id)
            )
            return bool(result.rowcount)

    def current_refresh_token(self) -> str | None:
        """The refresh token to revoke or refresh with: the stored one, else portals.yaml's."""
        row = self.stored()
        if row is not None and row.realm_id == self.realm_id:
            return row.refresh_token
        return self._initial


# ---------------------------------------------------------------------------------------
# From portals.yaml
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppCredentials:
    """The QBO app's id and secret for a portal; its repr shows no secret."""

    client_id: str
    client_secret: str = field(repr=False)


def qbo_settings(portal: Portal) -> QBOSettings:
    """The portal's `qbo:` section; a `PortalConfigError` when QBO export is off."""
    if portal.settings.qbo is None:
        raise PortalConfigError(portal.id, "qbo", "no qbo section: QBO export is off")
    return portal.settings.qbo


def app_credentials(portal: Portal, environ: Mapping[str, str] | None = None) -> AppCredentials:
    """The app's client id and secret from the environment variables portals.yaml names
    (the refresh token variable is not needed: a connected portal's token is stored)."""
    env = os.environ if environ is None else environ
    settings = qbo_settings(portal)
    values = {}
    for name, var in (
        ("client_id", settings.client_id_env),
        ("client_secret", settings.client_secret_env),
    ):
        if not env.get(var):
            raise PortalConfigError(
                portal.id, f"qbo.{name}_env", f"environment variable {var} is not set"
            )
        values[name] = env[var]
    return AppCredentials(**values)


def check_qbo_secrets(
    portal: Portal, engine: Callable[[], Engine], environ: Mapping[str, str] | None = None
) -> None:
    """Raise now (`PortalConfigError`, `TokenKeyError`) when the portal could not get a QBO
    access token for want of a secret: the app's id and secret, DATAGATE_TOKEN_KEY, and a
    refresh token — stored by `datagate qbo connect`, or in the variable portals.yaml names.
    `engine()` is called only when that variable is unset, to look for a stored token."""
    env = os.environ if environ is None else environ
    settings = qbo_settings(portal)
    app_credentials(portal, env)
    TokenCipher(environ=env).check()
    if env.get(settings.refresh_token_env):
        return
    with engine().connect() as connection:
        stored = connection.execute(
            select(qbo_tokens.c.portal_id).where(qbo_tokens.c.portal_id == portal.id)
        ).first()
    if stored is None:
        raise PortalConfigError(
            portal.id,
            "qbo.refresh_token_env",
            f"environment variable {settings.refresh_token_env} is not set and no QBO token "
            f"is stored: connect the portal (`datagate qbo connect --portal {portal.id}`)",
        )


def token_store_for(
    portal: Portal,
    engine: Engine,
    *,
    environ: Mapping[str, str] | None = None,
    cipher: TokenCipher | None = None,
    margin_seconds: float = 300.0,
    **http: Any,
) -> QBOTokenStore:
    """The token store of a portal, with its OAuth client built from portals.yaml;
    `http` goes to `QBOAuthClient` (transport, recorder, run_id, retry, timeout)."""
    env = os.environ if environ is None else environ
    settings = qbo_settings(portal)
    credentials = app_credentials(portal, env)
    oauth = QBOAuthClient(
        portal.id,
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        token_url=settings.token_url,
        revoke_url=settings.revoke_url,
        **http,
    )
    return QBOTokenStore(
        engine,
        portal.id,
        settings.realm_id,
        oauth,
        initial_refresh_token=env.get(settings.refresh_token_env) or None,
        initial_refresh_token_env=settings.refresh_token_env,
        cipher=cipher or TokenCipher(environ=env),
        margin_seconds=margin_seconds,
    )
