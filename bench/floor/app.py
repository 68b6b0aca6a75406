"""The floor: what any Flask endpoint costs on this machine under gunicorn's sync workers.

POST /oauth/token parses the form body and answers a fixed small JSON document: no database, no
cryptography, no Authlib. Its CPU per request is the share of every server row that comes from
gunicorn, HTTP parsing, Flask and the TCP connection, not from the OAuth work.
"""
from flask import Flask, Response, request

app = Flask(__name__)
BODY = b'{"access_token": "floor", "token_type": "Bearer", "expires_in": 3600}'


@app.post("/oauth/token")
def token():
    request.form.get("grant_type")
    return Response(BODY, content_type="application/json", headers={"Cache-Control": "no-store"})


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
