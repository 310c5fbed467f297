"""Mint a local development token: `python -m ytmaker_gateway.token --user alice [--operator]`.

Signs with YTMAKER_JWT_SECRET from the environment and prints the token on stdout (nothing
else), so that `TOKEN=$(python -m ytmaker_gateway.token --user alice)` works.
"""

from __future__ import annotations

import argparse
import sys

from ytmaker_gateway.auth import OPERATOR, AuthError, mint_token
from ytmaker_gateway.settings import GatewaySettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mint a development JWT for the gateway.")
    parser.add_argument("--user", default="dev", help="the token's subject (default: dev)")
    parser.add_argument("--role", action="append", default=[], help="a role (repeatable)")
    parser.add_argument("--operator", action="store_true", help="add the operator role")
    parser.add_argument("--ttl", type=float, default=24 * 3600.0, help="lifetime in seconds")
    args = parser.parse_args(argv)
    roles = tuple(args.role) + ((OPERATOR,) if args.operator else ())
    try:
        print(mint_token(GatewaySettings().token_config(), args.user, roles, args.ttl))
    except AuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
