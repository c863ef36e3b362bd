"""Console sessions (migration 0028): who is signed in, and the CSRF token of their forms.

The cookie holds a random session id; the table keeps its SHA-256 only. An operator's session
holds the hash of the operator token it was opened with and ends when the api's token is
another; a tenant's holds the admin key it was opened with and ends when that key is revoked.
Plain SQL, keyword-only arguments.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from hexcast.core.db import Conn

__all__ = [
    "SESSION_TTL",
    "Principal",
    "close_session",
    "digest",
    "find_session",
    "open_operator_session",
    "open_tenant_session",
]

SESSION_TTL = timedelta(hours=8)
"""A session ends this long after sign-in (a working day), whatever it did."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a session is: the operator (every tenant) or one tenant (only its own data)."""

    tenant_id: int | None  # None: the operator
    tenant_name: str | None
    key_id: int | None
    csrf_token: str

    @property
    def operator(self) -> bool:
        return self.tenant_id is None

    @property
    def actor(self) -> str:
        """Who acted, for the operator audit log."""
        return "console:operator" if self.tenant_id is None else (
            f"console:tenant:{self.tenant_id}:key:{self.key_id}")

    def tenant_scope(self, requested: int | None) -> int | None:
        """The tenant a query is limited to: a tenant's own, whatever it asks for; the
        operator's filter (None: every tenant)."""
        return requested if self.tenant_id is None else self.tenant_id


def digest(secret: str) -> bytes:
    """SHA-256 of a high-entropy secret (a session id, the operator token)."""
    return hashlib.sha256(secret.encode()).digest()


async def _open(conn: Conn, *, principal: str, tenant_id: int | None, key_id: int | None,
                token_digest: bytes | None) -> tuple[str, str]:
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await conn.execute("DELETE FROM console_sessions WHERE expires_at < now()")
    await conn.execute(
        "INSERT INTO console_sessions (id_hash, principal, tenant_id, key_id, token_digest,"
        " csrf_token, expires_at) VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval)",
        digest(session_id), principal, tenant_id, key_id, token_digest, csrf, SESSION_TTL)
    return session_id, csrf


async def open_operator_session(conn: Conn, *, token_digest: bytes) -> str:
    """A new operator session; its id (for the cookie, the only time it is seen)."""
    session_id, _ = await _open(conn, principal="operator", tenant_id=None, key_id=None,
                                token_digest=token_digest)
    return session_id


async def open_tenant_session(conn: Conn, *, tenant_id: int, key_id: int) -> str:
    """A new session of ``tenant_id``, opened with its admin key ``key_id``; its id."""
    session_id, _ = await _open(conn, principal="tenant", tenant_id=tenant_id, key_id=key_id,
                                token_digest=None)
    return session_id


_FIND = """
SELECT s.tenant_id, t.name AS tenant_name, s.key_id, s.csrf_token
FROM console_sessions s
LEFT JOIN tenants t ON t.id = s.tenant_id
LEFT JOIN api_keys k ON k.id = s.key_id
WHERE s.id_hash = $1 AND s.expires_at > now()
  AND CASE WHEN s.principal = 'operator' THEN s.token_digest = $2
           ELSE k.revoked_at IS NULL AND k.scope = 'admin' END
"""


async def find_session(conn: Conn, *, session_id: str, token_digest: bytes | None
                       ) -> Principal | None:
    """The live session of ``session_id``: not expired, and its operator token still the
    api's (``token_digest``; None: operator sessions are closed) or its key unrevoked."""
    row = await conn.fetchrow(_FIND, digest(session_id), token_digest)
    if row is None:
        return None
    return Principal(row["tenant_id"], row["tenant_name"], row["key_id"], row["csrf_token"])


async def close_session(conn: Conn, *, session_id: str) -> None:
    await conn.execute("DELETE FROM console_sessions WHERE id_hash = $1", digest(session_id))
