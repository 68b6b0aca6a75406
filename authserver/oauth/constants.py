"""Protocol strings, defined once."""

GRANT_TYPE_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1
AUTH_CLIENT_SECRET_BASIC = "client_secret_basic"  # RFC 6749 §2.3.1
AUTH_CLIENT_SECRET_POST = "client_secret_post"
AUTH_PRIVATE_KEY_JWT = "private_key_jwt"  # RFC 7523 §2.2, OpenID Connect Core §9
CLIENT_AUTH_METHODS = [AUTH_CLIENT_SECRET_BASIC, AUTH_CLIENT_SECRET_POST, AUTH_PRIVATE_KEY_JWT]
PARAM_CLIENT_ASSERTION = "client_assertion"  # RFC 7521 §4.2
PARAM_CLIENT_ASSERTION_TYPE = "client_assertion_type"
CLIENT_ASSERTION_TYPE_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2
TOKEN_TYPE_BEARER = "Bearer"
HEADER_AUTHORIZATION = "Authorization"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

PATH_TOKEN = "/oauth/token"
PATH_INTROSPECT = "/oauth/introspect"
PATH_REVOKE = "/oauth/revoke"
PATH_JWKS = "/oauth/jwks"
PATH_METADATA = "/.well-known/oauth-authorization-server"
PATH_SECRET_LEAK = "/oauth/secret-leak"  # leak reports from secret scanners (no client authentication)
JSON_CONTENT_TYPE = "application/json"

JTI_MAX_LENGTH = 255
PARAM_RESOURCE = "resource"  # RFC 8707 §2
PARAM_SCOPE = "scope"
