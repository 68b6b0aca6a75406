"""A resource server for the API `https://api.example.com/orders` that accepts authserver's tokens.

    pip install -e 'verifier[flask]'
    AUTHSERVER_ISSUER=http://127.0.0.1:8000 API_IDENTIFIER=https://api.example.com/orders \\
    API_ORG_ID=org_... python verifier/examples/resource_server.py      # serves http://127.0.0.1:5000

Optional: API_CLIENT_ID and API_CLIENT_SECRET (the API's own client, `authserver api bind-client`)
turn on introspection for DELETE /orders/<id>, which must not honour a revoked token.
"""
import os

from authserver_verifier import Verifier, register_protected_resource_metadata, require_token
from flask import Flask, g

client = (os.environ["API_CLIENT_ID"], os.environ["API_CLIENT_SECRET"]) if "API_CLIENT_ID" in os.environ else None
verifier = Verifier(
    os.environ.get("AUTHSERVER_ISSUER", "http://127.0.0.1:8000"),
    os.environ.get("API_IDENTIFIER", "https://api.example.com/orders"),
    org_id=os.environ.get("API_ORG_ID"),  # the organization that owns the API: tokens of others are refused
    introspection_client=client,
)
app = Flask(__name__)
register_protected_resource_metadata(app, verifier, scopes_supported=["orders:read", "orders:write"],
                                     resource_name="Orders")


@app.get("/orders")
@require_token(verifier, scopes=["orders:read"])
def list_orders():
    return {"orders": [], "for": g.access_token.sub, "client": g.access_token.client_id}


@app.delete("/orders/<order_id>")
@require_token(verifier, scopes=["orders:write"], introspect=client is not None)
def cancel_order(order_id):
    return {"cancelled": order_id, "by": g.access_token.sub}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
