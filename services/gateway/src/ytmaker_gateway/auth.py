"""Who is asking: JWT bearer tokens (HS256) and the rules of who may see what
(docs/protocol.md "Authentication").

Pure: no I/O. `authenticate` turns a raw token (or its absence) into a `Principal` or raises
`AuthError`; the callers map that to HTTP 401 or WebSocket close 4401. Tokens are never logged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jwt

ALGORITHM = "HS256"
OPERATOR = "operator"
ANONYMOUS_USER = "dev"


class AuthError(Exception):
    """No usable credentials. `str(exc)` is safe to show: it never contains the token."""


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
    if not config.secret:
        raise AuthError("tokens cannot be verified: no signing secret configured")
    try:
        claims = jwt.decode(
            token,
            config.secret,
            algorithms=[ALGORITHM],
            audience=config.audience,
            issuer=config.issuer,
            leeway=config.leeway_s,
            options={"require": ["sub", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {type(exc).__name__}") from None
    except Exception as exc:  # e.g. a signed `exp` of Infinity: still only a bad token
        raise AuthError(f"invalid token: {type(exc).__name__}") from None
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
