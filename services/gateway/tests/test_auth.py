"""JWT authentication and the visibility rule (docs/protocol.md "Authentication")."""

from __future__ import annotations

import subprocess
import sys

import jwt
import pytest
from pydantic import ValidationError

from ytmaker_gateway.auth import (
    GRANT_AUDIENCE,
    AuthError,
    Principal,
    TokenConfig,
    authenticate,
    bearer,
    mint_token,
)
from ytmaker_gateway.settings import GatewaySettings

CONFIG = TokenConfig(secret="s3cret-for-tests-only-0123456789abcdef")


def test_a_minted_token_authenticates_its_user_and_roles() -> None:
    token = mint_token(CONFIG, "alice", ("operator",))
    principal = authenticate(CONFIG, token)
    assert principal == Principal("alice", frozenset({"operator"}))
    assert principal.is_operator


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        mint_token(TokenConfig(secret="another-secret-0123456789abcdef012"), "alice"),
        mint_token(CONFIG, "alice", ttl_s=-120),
        jwt.encode({"sub": "alice", "exp": 9999999999}, CONFIG.secret or "", algorithm="HS256"),
        jwt.encode(
            {"sub": "a", "exp": 9999999999, "aud": "ytmaker-gateway", "iss": "ytmaker"},
            "",
            algorithm="none",
        ),
    ],
    ids=["garbage", "forged", "expired", "no-audience", "alg-none"],
)
def test_bad_tokens_are_refused_without_echoing_them(token: str) -> None:
    with pytest.raises(AuthError) as caught:
        authenticate(CONFIG, token)
    assert token not in str(caught.value)


def test_no_token_is_refused_unless_the_development_flag_is_set() -> None:
    with pytest.raises(AuthError, match="missing"):
        authenticate(CONFIG, None)
    dev = authenticate(TokenConfig(secret=None, allow_anonymous=True), None)
    assert dev.user == "dev" and dev.is_operator


def test_users_see_their_own_tasks_and_operators_see_all() -> None:
    alice = Principal("alice")
    assert alice.may_see("alice") and not alice.may_see("bob")
    assert Principal("ops", frozenset({"operator"})).may_see("bob")


def test_bearer_header_parsing() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None
    assert bearer("Bearer ") is None
    assert bearer(None) is None


def test_the_token_command_mints_a_verifiable_token() -> None:
    env = {"YTMAKER_JWT_SECRET": CONFIG.secret or "", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "ytmaker_gateway.token", "--user", "carol", "--operator"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert authenticate(CONFIG, out.stdout.strip()) == Principal("carol", frozenset({"operator"}))


def test_the_token_command_fails_clearly_without_a_secret() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ytmaker_gateway.token"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert out.returncode == 2 and "YTMAKER_JWT_SECRET" in out.stderr


def test_tokens_cannot_have_the_audience_of_artifact_grants() -> None:
    """Else a grant in a URL would be a token, and a token a grant (docs/decisions/0134)."""
    with pytest.raises(ValidationError, match="grants"):
        GatewaySettings(jwt_audience=GRANT_AUDIENCE)
