"""The command line: a ready demo organization."""
from __future__ import annotations

import os

import click

from .assertions import sign_assertion
from .output import with_app


@click.command()
@with_app
def demo():
    """Create a ready organization, service account, client, secret and key, and print a curl line."""
    import secrets as _secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from ..services.accounts import create_account
    from ..services.apis import (
        BUILTIN_DEFAULT,
        BUILTIN_MANAGEMENT,
        MANAGE_SCOPE,
        builtin_api,
        grant_client,
        scopes_of,
    )
    from ..services.client_keys import add_key
    from ..services.client_secrets import add_secret
    from ..services.clients import register_client
    from ..services.common import current_settings
    from ..services.organizations import create_organization

    settings = current_settings()
    organization = create_organization("Demo organization")
    service = create_account(organization.org_id, "demo-service", "service")
    admin_email = f"admin-{organization.org_id[4:12]}@demo.example"
    admin_password = _secrets.token_urlsafe(12)
    admin = create_account(
        organization.org_id, "Demo admin", "user", email=admin_email, password=admin_password, is_admin=True
    )
    app_client = register_client(organization.org_id, "Demo app", description="Created by 'authserver demo'.")
    default_api, management_api = builtin_api(BUILTIN_DEFAULT), builtin_api(BUILTIN_MANAGEMENT)
    if default_api is not None:
        grant_client(app_client.client_id, default_api.api_id, [s.name for s in scopes_of(default_api)], default=True)
    grant_client(app_client.client_id, management_api.api_id, MANAGE_SCOPE, default=default_api is None)
    new_secret = add_secret(app_client.client_id)
    private_key = ec.generate_private_key(ec.SECP256R1())
    key_path = settings.instance_path / f"demo-client-{app_client.client_id[:8]}.pem"
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    client_key = add_key(app_client.client_id, public_pem, kid="demo-key-1")
    assertion_jwt = sign_assertion(
        pem,
        app_client.client_id,
        service.account_id,
        settings.token_endpoint,
        client_key.kid,
        lifetime=settings.assertion_max_lifetime,
    )
    curl = (f"curl -s -u '{app_client.client_id}:{new_secret.client_secret}' "
            f"-d grant_type={'urn:ietf:params:oauth:grant-type:jwt-bearer'} -d assertion={assertion_jwt} "
            f"{settings.token_endpoint}")
    payload = {
        "org_id": organization.org_id, "account_id": service.account_id, "client_id": app_client.client_id,
        "secret_id": new_secret.secret_id, "client_secret": new_secret.client_secret, "kid": client_key.kid,
        "private_key_file": str(key_path), "token_endpoint": settings.token_endpoint, "curl": curl,
        "admin_account_id": admin.account_id, "admin_email": admin_email, "admin_password": admin_password,
        "console": settings.issuer + "/console", "management_api": management_api.identifier,
        "default_api": default_api.identifier if default_api is not None else None,
    }
    human = "\n".join([
        f"organization   {organization.org_id}",
        f"account        {service.account_id} (service)",
        f"client_id      {app_client.client_id}",
        f"client_secret  {new_secret.client_secret}   (shown once)",
        f"key            {client_key.kid}; private key in {key_path}",
        f"console        {settings.issuer}/console  sign in as {admin_email} / {admin_password}   (shown once)",
        "",
        f"Get a token (the assertion inside is valid for {settings.assertion_max_lifetime} s and works once):",
        curl,
        "",
        "A fresh assertion for the next request:",
        f"  .venv/bin/authserver assertion --key {key_path} --client-id {app_client.client_id} "
        f"--subject {service.account_id} --kid {client_key.kid}",
        "",
        f"A management API token (the admin {admin.account_id} as subject, resource = the management API):",
        f"  curl -s -u '{app_client.client_id}:{new_secret.client_secret}' "
        f"-d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d resource={management_api.identifier} "
        f"-d scope={MANAGE_SCOPE} -d assertion=$(.venv/bin/authserver assertion --key {key_path} "
        f"--client-id {app_client.client_id} --subject {admin.account_id} --kid {client_key.kid}) "
        f"{settings.token_endpoint}",
    ])
    return payload, human
