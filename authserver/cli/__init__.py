"""The `authserver` command line: the operator's front door to the same services as the console and API.

One module per noun; each answers through `output` (text, or one JSON document with --json)."""
from __future__ import annotations

import click

from .accounts import account
from .apis import api
from .assertions import assertion, sign_assertion
from .clients import client
from .demo import demo
from .issuers import issuer
from .keys import key
from .maintenance import purge, purge_once
from .orgs import org
from .secrets import secret
from .server import config, init, initialise, serve
from .signing_keys import signing_key

__all__ = ["initialise", "main", "purge_once", "sign_assertion"]  # also called by tests, benchmarks and the purger


@click.group()
@click.version_option(package_name="authserver")
def main() -> None:
    """authserver: OAuth 2.0 JWT bearer grant (RFC 7523) for confidential clients."""


main.add_command(account)
main.add_command(api)
main.add_command(assertion)
main.add_command(client)
main.add_command(demo)
main.add_command(key)
main.add_command(org)
main.add_command(secret)
main.add_command(init)
main.add_command(serve)
main.add_command(config)
main.add_command(signing_key)
main.add_command(purge)
main.add_command(issuer)
