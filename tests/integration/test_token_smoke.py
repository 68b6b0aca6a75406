import jwt

from authserver.extensions import db
from authserver.models import AccessToken

from ..conftest import ISSUER, get_token


def test_basic_auth_exchanges_assertion_for_token(http, tenant):
    body = get_token(http, tenant)
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read write"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == tenant.client_id and claims["sub"] == tenant.account_id
    assert claims["iss"] == ISSUER
    record = db.session.get(AccessToken, claims["jti"])
    assert record is not None and record.secret_id == tenant.secret_id
