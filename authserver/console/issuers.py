"""Console pages for trusted issuers (workload identity federation, SPEC §10): the organization's
issuers, their rules in order, the apps allowed to present their assertions, and deletion that says
what it does. Each view parses its form and calls services/trusted_issuers.py, where every rule lives."""
from __future__ import annotations

from flask import flash, redirect, request, url_for

from ..errors import NotFound
from ..services import trusted_issuers as issuer_service
from ..services.accounts import list_accounts
from ..services.apis import list_apis
from ..services.clients import list_clients
from ..services.trusted_issuers import (
    AUDIENCE_MAX,
    ISSUER_URL_MAX,
    KEYS_FROM_DISCOVERY,
    KEYS_FROM_JWKS_URI,
    KEYS_PASTED,
    MAX_CONDITIONS_PER_RULE,
)
from .feedback import FormErrors, attempt, flash_errors
from .views import actor, bp, org_id, page, plural, see_other, token_lifetime

ISSUER_FIELDS = ("issuer_url", "audience", "key_source", "jwks_uri", "jwks")
RULE_FIELDS = ("account_id", "claims", "scope", "resource")
KEY_SOURCES = {
    KEYS_FROM_DISCOVERY: "OpenID Connect discovery at the issuer URL",
    KEYS_FROM_JWKS_URI: "A JWK Set URL (jwks_uri)",
    KEYS_PASTED: "A pasted JWK Set",
}
KEY_SOURCE_NAMES = {KEYS_FROM_DISCOVERY: "Discovery", KEYS_FROM_JWKS_URI: "JWK Set URL", KEYS_PASTED: "Pasted JWK Set"}


@bp.context_processor
def issuer_template_helpers() -> dict:
    return {
        "KEY_SOURCES": KEY_SOURCES,
        "KEY_SOURCE_NAMES": KEY_SOURCE_NAMES,
        "KEYS_PASTED": KEYS_PASTED,
        "KEYS_FROM_JWKS_URI": KEYS_FROM_JWKS_URI,
        "ISSUER_URL_MAX": ISSUER_URL_MAX,
        "AUDIENCE_MAX": AUDIENCE_MAX,
        "MAX_CONDITIONS_PER_RULE": MAX_CONDITIONS_PER_RULE,
        "issuer_deletion_message": issuer_deletion_message,
        "rule_deletion_message": rule_deletion_message,
        "disallow_message": disallow_message,
    }


# --- what a destructive action does: one text for the dialog and the page ----------------------

def issuer_deletion_message(issuer, rules: int, apps: int) -> str:
    # services.trusted_issuers.delete_issuer deletes the row the token path looks up, and no token record.
    return (f"The trusted issuer {issuer.issuer_url}, its {plural(rules, 'rule', 'rules')} and the permission of "
            f"{plural(apps, 'app', 'apps')} to present its assertions are deleted: its assertions are refused from "
            "the very next token request. Access tokens already issued through it stay valid until they expire "
            f"(at most {token_lifetime()}); to end them sooner, revoke them or disable the account. The accounts "
            "and apps themselves are not affected. To trust the issuer again, add it and its rules anew.")


def rule_deletion_message(rule) -> str:
    return (f"Rule {rule.position} stops mapping assertions from the very next token request; an assertion it "
            "matched obtains a token only if a later rule matches it. Access tokens already issued stay valid "
            f"until they expire (at most {token_lifetime()}).")


def disallow_message(client) -> str:
    return (f"“{client.name}” can no longer present this issuer's assertions from the very next token request. "
            f"Access tokens it already obtained stay valid until they expire (at most {token_lifetime()}); "
            "its own secrets and keys keep working.")


# --- form parsing -----------------------------------------------------------------------------

def claim_lines(text: str) -> list[str]:
    """Claim conditions typed one NAME=VALUE per line, blank lines skipped; the service reads each line."""
    return [line for line in text.splitlines() if line.strip()]


def choice_errors(exc: NotFound, fields: tuple[str, ...]) -> FormErrors:
    """A chosen account or app that is not the organization's: the form's choice is invalid (400), the page
    itself exists."""
    if exc.field not in fields:
        raise exc
    return FormErrors({exc.field: exc.message}, status=400)


# --- pages ------------------------------------------------------------------------------------

@bp.get("/issuers")
def issuers():
    rows = [{"issuer": issuer, "key_status": issuer_service.keys_status(issuer),
             "rules": len(issuer_service.list_rules(issuer.issuer_id, org_id())),
             "clients": issuer_service.allowed_clients(issuer.issuer_id, org_id())}
            for issuer in issuer_service.list_issuers(org_id())]
    return page("issuers.html", section="issuers", rows=rows)


@bp.route("/issuers/new", methods=["GET", "POST"])
def new_issuer():
    form = {"issuer_url": "", "audience": "", "key_source": KEYS_FROM_DISCOVERY, "jwks_uri": "", "jwks": ""}
    errors = FormErrors()
    if request.method == "POST":
        form = {name: request.form.get(name, "") for name in ISSUER_FIELDS}
        source = form["key_source"]
        if source not in KEY_SOURCES:
            errors = FormErrors({"key_source": "Choose how the issuer's keys are obtained."}, status=400)
        else:
            issuer, errors = attempt(
                ISSUER_FIELDS, issuer_service.add_issuer, org_id(), form["issuer_url"], form["audience"],
                jwks_uri=form["jwks_uri"] if source == KEYS_FROM_JWKS_URI else None,
                jwks=form["jwks"] if source == KEYS_PASTED else None, actor=actor(),
            )
            if issuer is not None:
                flash(f"Trusted the issuer {issuer.issuer_url}. Next: add a rule that maps its tokens to an account, "
                      "and allow the apps that may present them.", "success")
                return see_other(".issuer_detail", issuer_id=issuer.issuer_id)
    return page("issuer_new.html", errors.status if errors else 200, section="issuers", form=form, errors=errors)


def render_issuer_detail(issuer_id: str, *, status: int = 200, rule_form=None, rule_errors=None,
                         allow_errors=None):
    issuer = issuer_service.get_issuer(issuer_id, org_id())
    rules = issuer_service.list_rules(issuer.issuer_id, org_id())
    allowed = issuer_service.allowed_clients(issuer.issuer_id, org_id())
    accounts = list_accounts(org_id())
    names = {account.account_id: account for account in accounts}
    allowed_ids = {client.client_id for client in allowed}
    return page(
        "issuer_detail.html", status, section="issuers", issuer=issuer, keys=issuer_service.keys_status(issuer),
        rules=[{"rule": rule, "account": names.get(rule.account_id),
                "conditions": issuer_service.rule_conditions(rule)} for rule in rules],
        allowed=allowed, allowable=[c for c in list_clients(org_id()) if c.client_id not in allowed_ids],
        accounts=[account for account in accounts if account.disabled_at is None],
        apis=list_apis(org_id()),
        rule_form=rule_form or dict.fromkeys(RULE_FIELDS, ""), rule_errors=rule_errors or FormErrors(),
        allow_errors=allow_errors or FormErrors(),
        deletion_message=issuer_deletion_message(issuer, len(rules), len(allowed)),
    )


@bp.get("/issuers/<issuer_id>")
def issuer_detail(issuer_id: str):
    return render_issuer_detail(issuer_id)


@bp.post("/issuers/<issuer_id>/rules")
def add_issuer_rule(issuer_id: str):
    issuer = issuer_service.get_issuer(issuer_id, org_id())
    form = {name: request.form.get(name, "") for name in RULE_FIELDS}
    try:
        rule, errors = attempt(
            RULE_FIELDS, issuer_service.add_rule, issuer.issuer_id, form["account_id"], claim_lines(form["claims"]),
            scope=form["scope"].strip() or None, resource=form["resource"].strip() or None, org_id=org_id(),
            actor=actor(),
        )
    except NotFound as exc:
        rule, errors = None, choice_errors(exc, ("account_id",))
    if rule is None:
        return render_issuer_detail(issuer.issuer_id, status=errors.status, rule_form=form, rule_errors=errors)
    flash(f"Added rule {rule.position}.", "success")
    return redirect(url_for(".issuer_detail", issuer_id=issuer.issuer_id) + "#rules", 303)


@bp.route("/issuers/<issuer_id>/rules/<rule_id>/delete", methods=["GET", "POST"])
def delete_issuer_rule(issuer_id: str, rule_id: str):
    issuer = issuer_service.get_issuer(issuer_id, org_id())
    rule = next((r for r in issuer_service.list_rules(issuer.issuer_id, org_id()) if r.rule_id == rule_id), None)
    if rule is None:
        raise NotFound("Rule not found.")
    if request.method == "GET":
        return page(
            "confirm.html", section="issuers", title=f"Delete rule {rule.position}?",
            message=rule_deletion_message(rule),
            action=url_for(".delete_issuer_rule", issuer_id=issuer.issuer_id, rule_id=rule.rule_id),
            button="Delete rule", cancel=url_for(".issuer_detail", issuer_id=issuer.issuer_id),
        )
    position = rule.position
    _, errors = attempt((), issuer_service.delete_rule, issuer.issuer_id, rule.rule_id, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash(f"Deleted rule {position}.", "success")
    return redirect(url_for(".issuer_detail", issuer_id=issuer.issuer_id) + "#rules", 303)


@bp.post("/issuers/<issuer_id>/clients")
def allow_issuer_client(issuer_id: str):
    issuer = issuer_service.get_issuer(issuer_id, org_id())
    try:
        client, errors = attempt(("client_id",), issuer_service.allow_client, issuer.issuer_id,
                                 request.form.get("client_id", ""), org_id(), actor=actor())
    except NotFound as exc:
        client, errors = None, choice_errors(exc, ("client_id",))
    if client is None:
        return render_issuer_detail(issuer.issuer_id, status=errors.status, allow_errors=errors)
    flash(f"“{client.name}” may now present this issuer's assertions.", "success")
    return redirect(url_for(".issuer_detail", issuer_id=issuer.issuer_id) + "#apps", 303)


@bp.route("/issuers/<issuer_id>/clients/<client_id>/delete", methods=["GET", "POST"])
def disallow_issuer_client(issuer_id: str, client_id: str):
    issuer = issuer_service.get_issuer(issuer_id, org_id())
    client = next((c for c in issuer_service.allowed_clients(issuer.issuer_id, org_id()) if c.client_id == client_id),
                  None)
    if client is None:
        raise NotFound("This app is not allowed for the issuer.")
    if request.method == "GET":
        return page(
            "confirm.html", section="issuers", title=f"Disallow “{client.name}”?", message=disallow_message(client),
            action=url_for(".disallow_issuer_client", issuer_id=issuer.issuer_id, client_id=client.client_id),
            button="Disallow app", cancel=url_for(".issuer_detail", issuer_id=issuer.issuer_id),
        )
    _, errors = attempt((), issuer_service.disallow_client, issuer.issuer_id, client.client_id, org_id(),
                        actor=actor())
    if errors:
        flash_errors(errors)
    else:
        flash(f"“{client.name}” may no longer present this issuer's assertions.", "success")
    return redirect(url_for(".issuer_detail", issuer_id=issuer.issuer_id) + "#apps", 303)


@bp.route("/issuers/<issuer_id>/delete", methods=["GET", "POST"])
def delete_issuer(issuer_id: str):
    issuer = issuer_service.get_issuer(issuer_id, org_id())
    if request.method == "GET":
        rules = len(issuer_service.list_rules(issuer.issuer_id, org_id()))
        apps = len(issuer_service.allowed_clients(issuer.issuer_id, org_id()))
        return page(
            "confirm.html", section="issuers", title=f"Stop trusting {issuer.issuer_url}?",
            message=issuer_deletion_message(issuer, rules, apps),
            action=url_for(".delete_issuer", issuer_id=issuer.issuer_id), button="Delete issuer",
            cancel=url_for(".issuer_detail", issuer_id=issuer.issuer_id),
        )
    url = issuer.issuer_url
    _, errors = attempt((), issuer_service.delete_issuer, issuer.issuer_id, org_id(), actor=actor())
    if errors:
        flash_errors(errors)
        return see_other(".issuer_detail", issuer_id=issuer.issuer_id)
    flash(f"Deleted the trusted issuer {url}: its assertions are refused from now on.", "success")
    return see_other(".issuers")
