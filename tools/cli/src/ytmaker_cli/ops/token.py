"""`ytmaker token`: a development token, signed with YTMAKER_JWT_SECRET
(`ytmaker_gateway.auth.mint_token`)."""

from __future__ import annotations

from typing import Annotated

import typer

from ytmaker_cli.context import CliError, cli


def command(
    ctx: typer.Context,
    user: Annotated[str, typer.Option(help="The token's subject.")] = "dev",
    operator: Annotated[bool, typer.Option(help="Add the operator role.")] = False,
    role: Annotated[list[str] | None, typer.Option(help="A role (repeatable).")] = None,
    ttl: Annotated[float, typer.Option(min=1, help="Lifetime in seconds.")] = 24 * 3600.0,
) -> None:
    """Print a development token (nothing else), for YTMAKER_TOKEN or --token."""
    from ytmaker_gateway.auth import OPERATOR, AuthError, mint_token
    from ytmaker_gateway.settings import GatewaySettings

    cli(ctx)
    roles = tuple(role or ()) + ((OPERATOR,) if operator else ())
    try:
        token = mint_token(GatewaySettings().token_config(), user, roles, ttl)
    except AuthError as exc:
        raise CliError(str(exc), 2) from None
    print(token)
