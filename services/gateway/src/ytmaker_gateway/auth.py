"""Who is asking: JWT bearer tokens (HS256) and the rules of who may see what
(docs/protocol.md "Authentication").

Pure: no I/O. `authenticate` turns a raw token (or its absence) into a `Principal` or raises
`AuthError`; the callers map that to HTTP 401 or WebSocket close 4401. Tokens are never logged.
An artifact grant (`mint_grant`, `redeem_grant`) is what a URL carries instead of a token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt

ALGORITHM = "HS256"
OPERATOR = "operator"
ANONYMOUS_USER = "dev"
#: The audience of an artifact grant (`mint_grant`): never a bearer token's, so that neither
#: is taken for the other.
GRANT_AUDIENCE = "ytmaker-artifact"


class AuthError(Exception):
    """No usable credentials. `str(exc)` is safe to show: it never contains the token."""


class GrantMismatch(AuthError):
    """A good grant, for another artifact: the caller is known, and not allowed this one."""


@dataclass(frozen=True)
class Principal:
    """The authenticated user and their roles."""

    user: str
    roles: frozenset[str] = field(default_factory=frozenset)
    #: When the token stops being valid (epoch seconds, its `exp` plus the leeway); None for
    #: the development user. An open WebSocket is closed with 4401 then.
    expires_at: float | None = field(default=None, compare=False)

    @property
    def is_operator(self) -> bool:
        return OPERATOR in self.roles

    def may_see(self, owner: str) -> bool:
        """A user sees their own tasks and projects; an operator sees every one."""
        return self.is_operator or owner == self.user


@dataclass(frozen=True)
class TokenConfig:
    secret: str | None
    issuer: str = "ytmaker"
    audience: str = "ytmaker-gateway"
    allow_anonymous: bool = False
    leeway_s: float = 30.0


def mint_token(
    config: TokenConfig, user: str, roles: tuple[str, ...] = (), ttl_s: float = 3600.0
) -> str:
    """A signed token for `user`; raises AuthError when no secret is configured."""
    if not config.secret:
        raise AuthError("no signing secret configured (set YTMAKER_JWT_SECRET)")
    if not user:
        raise AuthError("a token needs a user")
    now = int(time.time())
    claims = {
        "sub": user,
        "roles": list(roles),
        "iss": config.issuer,
        "aud": config.audience,
        "iat": now,
        "exp": now + int(ttl_s),
    }
    return jwt.encode(claims, config.secret, algorithm=ALGORITHM)


def authenticate(config: TokenConfig, token: str | None) -> Principal:
    """The principal a token stands for.

    Without a token, the development flag yields the user `dev` (with the operator role, so
    that a local page can see everything); otherwise raises AuthError. A token is checked for
    signature, expiry, issuer and audience; `sub` is the user, `roles` a list of strings.
    """
    if not token:
        if config.allow_anonymous:
            return Principal(ANONYMOUS_USER, frozenset({OPERATOR}))
        raise AuthError("missing bearer token")
    return _principal(config, _verified(config, token, config.audience, "token"))


def mint_grant(
    config: TokenConfig, who: Principal, task_id: str, name: str, ttl_s: float
) -> tuple[str, int]:
    """A grant to read artifact `name` of a task, and when it expires (epoch seconds): what a
    URL carries where a browser cannot send the Authorization header (`<video src>`), in place
    of the token (docs/decisions/0134). Its own audience keeps it from ever being taken for a
    token, and a token for it. It never outlives the token it was asked with, and of the roles
    it keeps only `operator` (what `Principal.may_see` asks). Raises AuthError without a
    secret."""
    if not config.secret:
        raise AuthError("no signing secret configured (set YTMAKER_JWT_SECRET)")
    now = int(time.time())
    expires = now + int(ttl_s)
    if who.expires_at is not None:
        expires = min(expires, int(who.expires_at - config.leeway_s))
    claims = {
        "sub": who.user,
        "roles": [OPERATOR] if who.is_operator else [],
        "iss": config.issuer,
        "aud": GRANT_AUDIENCE,
        "iat": now,
        "exp": expires,
        "task": task_id,
        "artifact": name,
    }
    return jwt.encode(claims, config.secret, algorithm=ALGORITHM), expires


def redeem_grant(config: TokenConfig, grant: str, task_id: str, name: str) -> Principal:
    """Who a grant stands for, if it opens artifact `name` of `task_id`. Raises AuthError for
    a bad or expired grant, or a token; GrantMismatch for a good grant of another artifact."""
    claims = _verified(config, grant, GRANT_AUDIENCE, "grant")
    if claims.get("task") != task_id or claims.get("artifact") != name:
        raise GrantMismatch("the grant is for another artifact")
    return _principal(config, claims)


def _verified(config: TokenConfig, token: str, audience: str, what: str) -> dict[str, Any]:
    """The claims of a JWT checked for signature, expiry, issuer and `audience`."""
    if not config.secret:
        raise AuthError(f"{what}s cannot be verified: no signing secret configured")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            config.secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=config.issuer,
            leeway=config.leeway_s,
            options={"require": ["sub", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError(f"{what} expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid {what}: {type(exc).__name__}") from None
    except Exception as exc:  # e.g. a signed `exp` of Infinity: still only a bad token
        raise AuthError(f"invalid {what}: {type(exc).__name__}") from None
    return claims


def _principal(config: TokenConfig, claims: dict[str, Any]) -> Principal:
    user = claims.get("sub")
    roles = claims.get("roles", [])
    if not isinstance(user, str) or not user or len(user) > 128:
        raise AuthError("invalid token: bad subject")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthError("invalid token: roles must be a list of strings")
    expires_at = float(min(int(claims["exp"]), 2**53)) + config.leeway_s  # int: checked above
    return Principal(user, frozenset(roles), expires_at)


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
