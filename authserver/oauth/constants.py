"""Protocol strings, defined once."""

GRANT_TYPE_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1
AUTH_CLIENT_SECRET_BASIC = "client_secret_basic"  # RFC 6749 §2.3.1
AUTH_CLIENT_SECRET_POST = "client_secret_post"
CLIENT_AUTH_METHODS = [AUTH_CLIENT_SECRET_BASIC, AUTH_CLIENT_SECRET_POST]
TOKEN_TYPE_BEARER = "Bearer"
from ..services.signing_keys import ACCESS_TOKEN_JWT_TYP  # noqa: E402,F401  (defined with the signer)
HEADER_AUTHORIZATION = "Authorization"
HEADER_WWW_AUTHENTICATE = "WWW-Authenticate"
HEADER_CACHE_CONTROL = "Cache-Control"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

PATH_TOKEN = "/oauth/token"
PATH_INTROSPECT = "/oauth/introspect"
PATH_REVOKE = "/oauth/revoke"
PATH_JWKS = "/oauth/jwks"
PATH_METADATA = "/.well-known/oauth-authorization-server"

# Header parameters that carry or point at a key: never used to select one (RFC 8725 §3.10).
KEY_CARRYING_HEADERS = ("jwk", "jku", "x5u", "x5c")
JTI_MAX_LENGTH = 255
