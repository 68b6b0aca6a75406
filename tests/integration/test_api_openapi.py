"""The OpenAPI document matches the implementation: same routes, valid OpenAPI 3.1, and schemathesis,
generating requests from it against the WSGI app with an admin token, finds no 5xx and no response
that breaks the document."""
from __future__ import annotations

import json
import re
import secrets

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test
from jwt.algorithms import ECAlgorithm
from schemathesis import GenerationMode

from authserver.api.routing import OPERATIONS
from authserver.services import apis as api_service
from authserver.services import trusted_issuers as issuer_service
from authserver.services.accounts import create_account
from authserver.services.client_keys import add_key
from authserver.services.client_secrets import add_secret
from authserver.services.clients import register_client

from ..conftest import one_transaction, public_pem
from ..log_leaks import no_traceback_logged
from .api_support import API, make_manager, png_bytes

MAX_EXAMPLES = 12


def flask_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API + "/"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            routes |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def document_routes(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_every_route_is_documented_and_every_documented_route_exists(app, http):
    document = http.get(f"{API}/openapi.json").get_json()
    assert flask_routes(app) == document_routes(document)
    assert len(document_routes(document)) == len(OPERATIONS)


def test_document_is_valid_openapi_3_1(http):
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    response = http.get(f"{API}/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    errors = [f"{e.instance_path}: {e.message}" for e in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert errors == []
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', response.get_data(as_text=True)))
    assert refs <= set(document["components"]["schemas"])


def test_every_operation_documents_its_errors_as_problem_json(http):
    document = http.get(f"{API}/openapi.json").get_json()
    for path, item in document["paths"].items():
        for method, op in item.items():
            secured = bool(op["security"])
            statuses = set(op["responses"])
            assert secured == ({"401", "403"} <= statuses), (method, path)
            if "{" in path:
                assert "404" in statuses, (method, path)
            if "requestBody" in op:
                assert {"400", "413", "415"} <= statuses, (method, path)
            for status, response in op["responses"].items():
                if status >= "400":
                    assert list(response["content"]) == ["application/problem+json"]


def test_docs_page_renders_every_operation_without_external_resources(http):
    document = http.get(f"{API}/openapi.json").get_json()
    page = http.get(f"{API}/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for path, item in document["paths"].items():
        for _method, op in item.items():
            assert f'id="op-{op["operationId"]}"' in html
            assert path in html
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in html
    for slug in ("invalid-input", "not-found", "invalid-token", "validation-error"):
        assert f'id="problem-{slug}"' in html
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_problem_type_uris_resolve_to_the_docs_page(http, manager):
    problem = http.get(f"{API}/clients/nope", headers=manager.headers()).get_json()
    page, _, anchor = problem["type"].partition("#")
    assert page.endswith(f"{API}/docs")
    assert f'id="{anchor}"' in http.get(f"{API}/docs").get_data(as_text=True)


# --- schemathesis ---------------------------------------------------------------------------

CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance"]
# A path parameter replaced by an object that exists: made for an operation's first such example, and
# again after any example that changed something (read-only examples share them).
LIVE = "live-object"


LIVE_API = "Fuzz target API"
LIVE_SCOPE = "fuzz:read"


def live_objects(org_id: str) -> dict:
    """A client with a secret, a key and an icon, a service account, and an API with two scopes that the
    client holds access to and is bound to: targets for every path."""
    from cryptography.hazmat.primitives.asymmetric import ec

    with one_transaction():  # one COMMIT for all of it, and the ids read before it
        client = register_client(org_id, "Fuzz target", icon=png_bytes())
        secret = add_secret(client.client_id)
        key_pair = ec.generate_private_key(ec.SECP256R1())
        key = add_key(client.client_id, public_pem(key_pair), kid="fuzz-key")
        account = create_account(org_id, "Fuzz service", "service")
        # An organization may have only so many APIs: the previous examples' targets make room.
        for old in api_service.list_apis(org_id):
            if old.name == LIVE_API:
                api_service.delete_api(old.api_id, org_id, force=True)
        api = api_service.create_api(LIVE_API, f"https://fuzz.example.test/{secrets.token_hex(6)}", org_id=org_id,
                                     scopes=[LIVE_SCOPE, "fuzz:write"])
        api_service.grant_client(client.client_id, api.api_id, LIVE_SCOPE)
        api_service.bind_client(api.api_id, client.client_id)
        for old in issuer_service.list_issuers(org_id):
            issuer_service.delete_issuer(old.issuer_id, org_id)
        issuer = issuer_service.add_issuer(org_id, f"https://issuer.fuzz.example.test/{secrets.token_hex(6)}", "fuzz",
                                           jwks={"keys": [json.loads(ECAlgorithm.to_jwk(key_pair.public_key()))]})
        rule = issuer_service.add_rule(issuer.issuer_id, account.account_id, ["sub=fuzz"])
        issuer_service.allow_client(issuer.issuer_id, client.client_id)
        return {"client_id": client.client_id, "secret_id": secret.secret_id, "kid": key.kid,
                "account_id": account.account_id, "api_id": api.api_id, "name": LIVE_SCOPE,
                "issuer_id": issuer.issuer_id, "rule_id": rule.rule_id}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(app, manager, mode):
    from schemathesis import checks as st_checks

    checks = [getattr(st_checks, name) for name in CHECKS]
    if mode is GenerationMode.NEGATIVE:
        checks.append(st_checks.negative_data_rejection)
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)
    tested = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and not (operation.body or operation.query):
            continue  # nothing in the request could break the schema: a path parameter is any string
        tested.add((operation.method.upper(), operation.path))
        names = re.findall(r"{(\w+)}", operation.path)
        strategies = [operation.as_strategy(generation_mode=mode)]
        if names:  # also aim at objects that exist, not only at random ids that answer 404
            strategies.append(operation.as_strategy(generation_mode=mode,
                                                    path_parameters={name: LIVE for name in names}))

        made: dict = {}  # this operation's live objects, until an example changes something

        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=st.one_of(strategies))
        def exercise(case):
            if case.path_parameters and LIVE in case.path_parameters.values():
                live = made.get("live") or made.setdefault("live", live_objects(manager.org_id))
                case.path_parameters = {k: live[k] if v == LIVE else v for k, v in case.path_parameters.items()}
            response = case.call_and_validate(headers=manager.headers(), checks=checks)
            if case.method.upper() != "GET" and response.status_code < 400:
                made.clear()  # it created, changed or deleted something: the next example gets fresh objects

        with no_traceback_logged():
            exercise()
    if mode is GenerationMode.POSITIVE:
        # schemathesis leaves out the document it was loaded from; every other operation was exercised
        assert tested == {(op.method, API + op.path) for op in OPERATIONS} - {("GET", f"{API}/openapi.json")}
    else:
        assert tested == {(op.method, API + op.path) for op in OPERATIONS if op.body or op.query or op.upload}


def test_stateful_schemathesis_sequences_find_no_server_error(app):
    """Sequences of calls linked by the ids that answers carry (create a client, then read, change or delete
    it, add its secrets and keys...): the paths a single call with a random id never reaches."""
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)
    assert schema.apply_stateful_inference(None).selected > 0  # links inferred from the document
    answered: list[int] = []

    class Sequences(schema.as_state_machine()):
        def setup(self):  # an organization per sequence: a step may delete the caller's own client
            self.manager = make_manager(app.test_client(), "Stateful")

        def before_call(self, case):
            case.headers = {**(case.headers or {}), **self.manager.headers()}

        def validate_response(self, response, case, **kwargs):
            answered.append(response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.text[:300])

    with no_traceback_logged():
        run_state_machine_as_test(Sequences, settings=settings(
            max_examples=6, stateful_step_count=8, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck)))
    assert any(200 <= status < 300 for status in answered)
