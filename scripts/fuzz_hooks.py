"""Schemathesis hooks for scripts/fuzz: authentication for every generated call.

Every call gets a FRESH access token, obtained right before it is sent, so a
generated `POST /v1/auth/logout {"scope": "all"}` (or a session deletion)
cannot blind the calls after it. The token is the bootstrap administrator's,
so the permission-guarded routes are exercised past their 403, except for
the calls that would destroy the identity doing the fuzzing: those on
`/v1/users/me` that change or delete the account, and password change, run
as a throwaway account signed up for that one call, and generated calls that
would disable, delete or demote the administrator by id get a random id.

Reads FORGE_FUZZ_BASE, FORGE_FUZZ_ADMIN_EMAIL and FORGE_FUZZ_ADMIN_PASSWORD.
"""

import os
import uuid

import requests
import schemathesis
from hypothesis import strategies as st
from hypothesis.internal import lambda_sources

# CPython 3.11 (this machine's is 3.11.7) can raise "SystemError: AST
# constructor recursion depth mismatch" from ast.parse when parses overlap
# (CPython gh-106905: the depth was tracked in state the calls shared).
# Hypothesis parses schemathesis's own source there only to name a filter
# lambda in a strategy's repr; the error surfaced as a schemathesis
# "Runtime Error" on an operation and failed two CI runs with no request
# sent. The name is cosmetic, so a failure to make it falls back to a
# placeholder; the cases generated are the same.
_describe_lambda = lambda_sources.lambda_description


def _lambda_description_or_placeholder(f):
    try:
        return _describe_lambda(f)
    except SystemError:
        return "lambda: <source unavailable>"


lambda_sources.lambda_description = _lambda_description_or_placeholder

BASE = os.environ["FORGE_FUZZ_BASE"]
ADMIN_EMAIL = os.environ["FORGE_FUZZ_ADMIN_EMAIL"]
ADMIN_PASSWORD = os.environ["FORGE_FUZZ_ADMIN_PASSWORD"]
THROWAWAY_PASSWORD = "fuzz throwaway correct horse battery"

# Calls that change or end the caller's own account: they run as a throwaway.
SELF_DESTRUCTIVE = {
    ("DELETE", "/v1/users/me"),
    ("PATCH", "/v1/users/me"),
    ("POST", "/v1/auth/password/change"),
}

# The document's custom formats (src/http/api/contract.rs), generated the
# way a real client fills them: numbers valid in their numbering plan (any
# spacing), and new passwords a strength check accepts.
VALID_NUMBERS = [
    "+14155550100", "+12125550123", "+16175550142", "+442079460958",
    "+33142685300", "+4930901820", "+61293744000", "+81312345678",
]
schemathesis.openapi.format(
    "phone",
    st.sampled_from(VALID_NUMBERS).flatmap(
        lambda n: st.sampled_from([n, f"{n[:2]} {n[2:5]} {n[5:]}", f" {n} "])
    ),
)
schemathesis.openapi.format(
    "password",
    st.lists(st.text(alphabet="abcdefghijkmnopqrstuvwxyz", min_size=5, max_size=7), min_size=4, max_size=5).map(
        "-".join
    ),
)

# Refusals of schema-valid values that are right, for reasons the document
# states in words because JSON Schema cannot: the contract makes a code or
# cursor the server never issued 400 `invalid_code` / `invalid_cursor`; a
# phone number must exist in its country's numbering plan, and a new
# password must pass the strength check (both said in the field's
# description). Only those exact refusals are forgiven, nothing else.
UNISSUED = {"invalid_code", "invalid_cursor"}


def _explained(reason):
    # A WebAuthn credential's content (CBOR, signatures) is no JSON Schema
    # either: a live ceremony answered with a made-up one is refused so.
    return (
        reason == "is not a valid phone number"
        or reason.startswith("too weak")
        or reason == "is not a WebAuthn credential"
    )


# A client registration's URIs, scopes and grant combinations follow rules
# the field descriptions state in words (absolute, no fragment, https or a
# loopback http, custom schemes only for public clients; scope tokens;
# refresh_token needs authorization_code, which needs a redirect URI;
# client_credentials only for confidential clients). Refusals naming only
# those fields are forgiven on the two registration calls, nothing else.
CLIENT_RULES = {"redirect_uris", "post_logout_redirect_uris", "backchannel_logout_uri", "scopes", "grant_types"}
CLIENT_CALLS = {("POST", "/v1/clients"), ("PATCH", "/v1/clients/{client_id}")}

# An upstream provider's registration follows rules its field descriptions
# state in words: endpoints are absolute https (loopback http) URLs without
# user information or fragment, each kind needs its own (oidc an issuer,
# oauth2 three URLs, apple a team and key id, which only apple takes),
# scopes are scope tokens, claims name userinfo fields. Refusals naming only
# those fields are forgiven on the two registration calls, nothing else.
PROVIDER_RULES = {
    "issuer", "authorize_url", "token_url", "userinfo_url", "scopes", "claims", "team_id", "key_id", "client_id",
}
PROVIDER_CALLS = {("POST", "/v1/providers"), ("PATCH", "/v1/providers/{id}")}

# A webhook endpoint's URL must be https, without credentials or fragment,
# and may not lead inside the network (400 `forbidden_target`); each event
# pattern must match an event type; the description has a length limit. All
# stated in the field descriptions; forgiven on the two registration calls.
WEBHOOK_RULES = {"url", "events", "description"}
WEBHOOK_CALLS = {("POST", "/v1/webhooks"), ("PATCH", "/v1/webhooks/{id}")}


@schemathesis.hook
def filter_failure(context, failure, case, response):
    # `DELETE /v1/users/{id}/sessions` ends every session and
    # `DELETE /v1/users/{id}/factors` resets every factor: the list is empty
    # afterwards, not gone, so its GET rightly answers 200 with no items.
    if type(failure).__name__ == "UseAfterFree" and str(failure.free).rstrip("/").endswith(("/sessions", "/factors")):
        return False
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code != 400:
        return True
    try:
        body = response.json()
    except ValueError:
        return True
    if body.get("error") in UNISSUED:
        return False
    call = (case.operation.method.upper(), case.operation.path)
    if call in WEBHOOK_CALLS and body.get("error") == "forbidden_target":
        return False
    fields = body.get("fields") or {}
    if body.get("error") != "validation_failed" or not fields:
        return True
    if (case.operation.method.upper(), case.operation.path) in CLIENT_CALLS and set(fields) <= CLIENT_RULES:
        return False
    if (case.operation.method.upper(), case.operation.path) in PROVIDER_CALLS and set(fields) <= PROVIDER_RULES:
        return False
    if call in WEBHOOK_CALLS and set(fields) <= WEBHOOK_RULES:
        return False
    return not all(map(_explained, fields.values()))


_session = requests.Session()
_admin_id = None


def _post(path, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = _session.post(BASE + path, json=body, headers=headers, timeout=30)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"fuzz auth: {path} answered {response.status_code}: {response.text[:300]}")
    return response.json()


def _admin_token():
    global _admin_id
    answer = _post("/v1/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    _admin_id = answer["user"]["id"]
    return answer["access_token"]


def _throwaway_token():
    # Provisioned by the administrator, not signed up: generated calls may
    # have closed the tenant's signup policy, which provisioning ignores.
    email = f"fuzz-{uuid.uuid4().hex}@example.com"
    _post("/v1/users", {"email": email, "password": THROWAWAY_PASSWORD}, token=_admin_token())
    answer = _post("/v1/auth/login", {"email": email, "password": THROWAWAY_PASSWORD})
    return answer["access_token"]


@schemathesis.auth(refresh_interval=None)
class FreshToken:
    """A new sign-in for every call (refresh_interval=None: nothing is cached)."""

    def get(self, case, context):
        if (case.operation.method.upper(), case.operation.path) in SELF_DESTRUCTIVE:
            return _throwaway_token()
        return _admin_token()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Keeps generated calls from disabling, deleting or demoting the administrator."""
    if case.operation.method.upper() == "GET" or not case.path_parameters:
        return
    if _admin_id is not None and case.path_parameters.get("id") == _admin_id:
        case.path_parameters["id"] = str(uuid.uuid4())
