//! Makes the OpenAPI document exact in one place, after every route has
//! added its own entry: the answers that shared plumbing gives on any route,
//! and the constraints of the identifiers that recur across request bodies.
//!
//! Client generators and API fuzzers read the document as the contract, so
//! every status a route can answer must be listed and a request the schema
//! calls valid must not be refused for a reason the schema does not state.
//! Answers that come from extractors rather than from a handler are added
//! here instead of in every `#[utoipa::path]`:
//!
//! - a request body: 400 (malformed JSON, wrong types, invalid fields),
//!   413 (over `server.max_body_bytes`), 415 (wrong `Content-Type`);
//! - query parameters: 400 (a query string that does not parse);
//! - the `X-Forge-Tenant` header: 404 `unknown_tenant`;
//! - a bearer requirement: 401 (missing, bad, expired or revoked token).
//!
//! Fields are constrained by name, because the name is the API's convention
//! for what they hold: `email` is an address of at most 254 characters,
//! `phone` an international number (custom format `phone`: a leading `+`,
//! at most 32 characters, valid for its country), the new-password fields
//! follow `password.min_length` / `password.max_length`, and `limit` query
//! parameters take 1 to 200. What a schema cannot express (password
//! strength, whether a phone number exists in its numbering plan, whether a
//! code or cursor was issued) is stated in the field's description.

use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::service::paging::MAX_LIMIT;

/// The longest address SMTP carries (RFC 5321 section 4.5.3.1.3).
const EMAIL_MAX: u64 = 254;
/// What `Phone::parse` accepts before parsing.
const PHONE_MAX: u64 = 32;
const PHONE_PATTERN: &str = r"^\s*\+[0-9 ().-]*\s*$";

/// `(schema, property)` pairs that set a new password, checked against the
/// password policy; sign-in passwords are only compared, never checked.
const NEW_PASSWORDS: &[(&str, &str)] = &[
    ("SignupRequest", "password"),
    ("ResetRequest", "new_password"),
    ("ChangePasswordRequest", "new_password"),
    ("CreateUserRequest", "password"),
    ("TenantAdminRequest", "password"),
];

/// The document as served: the generated one with the shared answers and
/// field constraints added. It stays JSON because utoipa's typed schemas
/// cannot hold everything JSON Schema can say (a `oneOf` beside an object's
/// properties is dropped on the way back).
pub fn complete(doc: &utoipa::openapi::OpenApi, config: &Config) -> Value {
    let mut value = serde_json::to_value(doc).unwrap_or_default();
    add_shared_responses(&mut value);
    add_token_endpoint(&mut value);
    constrain_fields(&mut value, config);
    value
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

/// The description a shared answer gets where the route left it empty.
fn standard_description(status: &str) -> Option<&'static str> {
    Some(match status {
        "400" => "malformed request or invalid fields (`fields` names them)",
        "401" => "missing, invalid, expired or revoked access token",
        "403" => "authenticated but lacking the permission",
        "404" => "no such resource in the caller's tenant",
        "409" => "conflicts with an existing resource",
        "413" => "the body is larger than `server.max_body_bytes`",
        "415" => "the body is not `application/json`",
        "429" => "rate limited; see `Retry-After`",
        _ => return None,
    })
}

fn add_shared_responses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for (method, op) in item.iter_mut() {
            if !matches!(method.as_str(), "get" | "put" | "post" | "patch" | "delete") {
                continue;
            }
            let Some(op) = op.as_object_mut() else { continue };
            let mut add: Vec<&str> = Vec::new();
            if op.contains_key("requestBody") {
                add.extend(["400", "413", "415"]);
            }
            let params = op.get("parameters").and_then(Value::as_array);
            let param_in = |place: &str, name: Option<&str>| {
                params.is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p["in"] == place
                            && name.is_none_or(|n| p["name"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(n)))
                    })
                })
            };
            if param_in("query", None) {
                add.push("400");
            }
            if param_in("header", Some(crate::http::extract::TENANT_HEADER)) {
                add.push("404");
            }
            let bearer = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|reqs| reqs.iter().any(|r| r.as_object().is_some_and(|r| !r.is_empty())));
            if bearer {
                add.push("401");
            }
            let responses = op.entry("responses").or_insert_with(|| Value::Object(Map::new()));
            let Some(responses) = responses.as_object_mut() else {
                continue;
            };
            for status in add {
                if !responses.contains_key(status) {
                    let description = standard_description(status).unwrap_or_default();
                    responses.insert(status.to_string(), error_response(description));
                }
            }
            for (status, response) in responses.iter_mut() {
                if response.get("description").and_then(Value::as_str) == Some("")
                    && let Some(text) = standard_description(status)
                {
                    response["description"] = json!(text);
                }
            }
        }
    }
    // Query parameters mean the same on every list.
    let rules = [
        ("limit", json!({"minimum": 1, "maximum": MAX_LIMIT})),
        ("user_id", json!({"format": "uuid"})),
        ("event", json!({"pattern": "^[a-z_]{1,64}$"})),
        ("tenant", json!({"pattern": TENANT_SLUG})),
    ];
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in item.values_mut() {
            let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                continue;
            };
            for p in params.iter_mut().filter(|p| p["in"] == "query") {
                for (name, rule) in &rules {
                    if p["name"] == *name
                        && let (Some(schema), Value::Object(rule)) = (p["schema"].as_object_mut(), rule)
                    {
                        schema.extend(rule.clone());
                    }
                }
            }
        }
    }
}

/// The token endpoint is an OAuth 2 password and refresh grant endpoint
/// (RFC 6749 sections 4.3 and 6); saying so tells clients, and fuzzers, that
/// its 400 `invalid_grant` answers well-formed but wrong credentials.
fn add_token_endpoint(doc: &mut Value) {
    let Some(components) = doc.get_mut("components").and_then(Value::as_object_mut) else {
        return;
    };
    let schemes = components
        .entry("securitySchemes")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(schemes) = schemes.as_object_mut() {
        schemes.insert(
            "oauth2".into(),
            json!({
                "type": "oauth2",
                "description": "The same bearer access tokens, obtained at the OAuth 2 token endpoint",
                "flows": {"password": {
                    "tokenUrl": "/v1/auth/token",
                    "refreshUrl": "/v1/auth/token",
                    "scopes": {}
                }}
            }),
        );
    }
}

/// Name rules of `domain::names`, as ECMA-262 patterns.
const ROLE_NAME: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";
const PERMISSION: &str = r"^(\*|(\*|[a-z0-9][a-z0-9._-]{0,63}):(\*|[a-z0-9][a-z0-9._-]{0,63}))$";
const TENANT_SLUG: &str = "^[a-z0-9][a-z0-9-]{0,62}$";
/// A signup-policy domain as `domain::settings` accepts it: letters,
/// digits and `-` in dot-separated labels (trimmed; a final dot allowed).
const DOMAIN: &str =
    r"^\s*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\s*$";
/// A display name: no control characters, not blank.
const DISPLAY_NAME: &str = r"^\s*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";

/// Constraints of single fields, by `(schema, property)`.
fn field_rules() -> Vec<(&'static str, &'static str, Value)> {
    let names = |pattern: &str| json!({"items": {"type": "string", "pattern": pattern}});
    let permissions = json!({
        "items": {"type": "string", "pattern": PERMISSION},
        "maxItems": crate::service::roles::MAX_PERMISSIONS,
    });
    vec![
        ("CreateRoleRequest", "name", json!({"pattern": ROLE_NAME})),
        ("CreateRoleRequest", "permissions", permissions.clone()),
        ("UpdateRoleRequest", "permissions", permissions),
        ("CreateUserRequest", "roles", names(ROLE_NAME)),
        ("CreateTenantRequest", "slug", json!({"pattern": TENANT_SLUG})),
        (
            "CreateTenantRequest",
            "name",
            json!({"minLength": 1, "maxLength": 200, "pattern": DISPLAY_NAME}),
        ),
        ("LogoutRequest", "scope", json!({"enum": ["session", "all", null]})),
        ("SignupPolicyPatch", "domains", names(DOMAIN)),
        (
            "BrandingPatch",
            "name",
            json!({"minLength": 1, "maxLength": 80, "pattern": DISPLAY_NAME}),
        ),
        (
            "BrandingPatch",
            "accent",
            json!({"pattern": r"^\s*#[0-9A-Fa-f]{6}\s*$"}),
        ),
        ("NewTenantSignup", "domains", names(DOMAIN)),
        (
            "CreateClientRequest",
            "name",
            json!({"minLength": 1, "maxLength": 100, "pattern": DISPLAY_NAME}),
        ),
        (
            "PatchClientRequest",
            "name",
            json!({"minLength": 1, "maxLength": 100, "pattern": DISPLAY_NAME}),
        ),
        (
            "CreateClientRequest",
            "type",
            json!({"enum": ["confidential", "public"]}),
        ),
        (
            "CreateClientRequest",
            "id_token_signed_response_alg",
            ID_TOKEN_ALGS.clone(),
        ),
        (
            "PatchClientRequest",
            "id_token_signed_response_alg",
            ID_TOKEN_ALGS.clone(),
        ),
        ("CreateClientRequest", "grant_types", GRANT_TYPES.clone()),
        ("PatchClientRequest", "grant_types", GRANT_TYPES.clone()),
        (
            "CreateProviderRequest",
            "id",
            json!({"minLength": 1, "maxLength": 40, "pattern": PROVIDER_ID}),
        ),
        ("CreateProviderRequest", "kind", provider_kinds(false)),
        ("PatchProviderRequest", "kind", provider_kinds(true)),
        (
            "CreateProviderRequest",
            "name",
            json!({"minLength": 1, "maxLength": 100, "pattern": DISPLAY_NAME}),
        ),
        (
            "PatchProviderRequest",
            "name",
            json!({"minLength": 1, "maxLength": 100, "pattern": DISPLAY_NAME}),
        ),
        ("CreateProviderRequest", "client_id", PROVIDER_CLIENT_ID.clone()),
        ("PatchProviderRequest", "client_id", PROVIDER_CLIENT_ID.clone()),
        ("CreateProviderRequest", "client_secret", PROVIDER_SECRET.clone()),
        ("PatchProviderRequest", "client_secret", PROVIDER_SECRET.clone()),
    ]
}

/// A provider id, as `domain::providers::ProviderId` parses it (surrounding
/// spaces are trimmed).
const PROVIDER_ID: &str = r"^\s*[a-z0-9][a-z0-9_-]{0,39}\s*$";
/// A provider's kind, as `domain::providers::ProviderKind` parses it (and
/// `null` where the field may be left out).
fn provider_kinds(nullable: bool) -> Value {
    let mut kinds: Vec<Value> = crate::domain::providers::ProviderKind::ALL
        .iter()
        .map(|k| Value::from(k.as_str()))
        .collect();
    if nullable {
        kinds.push(Value::Null);
    }
    json!({ "enum": kinds })
}

/// A client's ID-token algorithm, as `domain::clients::IdTokenAlg` parses it.
/// A provider's client id: what `ProviderSpec` accepts (no spaces or
/// control characters inside; surrounding spaces are trimmed).
static PROVIDER_CLIENT_ID: std::sync::LazyLock<Value> = std::sync::LazyLock::new(
    || json!({"minLength": 1, "maxLength": 255, "pattern": r"^\s*[^\s\u0000-\u001f\u007f]+\s*$"}),
);
/// A provider's client secret ([`crate::config::trimmed_provider_secret`]).
static PROVIDER_SECRET: std::sync::LazyLock<Value> = std::sync::LazyLock::new(
    || json!({"minLength": 1, "maxLength": crate::config::MAX_PROVIDER_SECRET_LEN, "pattern": r"\S"}),
);
static ID_TOKEN_ALGS: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| json!({"enum": ["EdDSA", "RS256", null]}));
/// A client's grant types, as `domain::clients::GrantType` parses them.
static GRANT_TYPES: std::sync::LazyLock<Value> = std::sync::LazyLock::new(
    || json!({"items": {"type": "string", "enum": ["authorization_code", "refresh_token", "client_credentials"]}}),
);

/// Request bodies that name an account by exactly one of `email` and `phone`.
const ONE_IDENTIFIER: &[&str] = &["LoginRequest", "OtpRequest", "OtpVerifyRequest"];
/// Request bodies that need at least one of `email` and `phone`.
const SOME_IDENTIFIER: &[&str] = &["CreateUserRequest"];

fn constrain_fields(doc: &mut Value, config: &Config) {
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (schema, property, rule) in field_rules() {
            if let Some(target) = schemas
                .get_mut(schema)
                .and_then(|s| s.get_mut("properties"))
                .and_then(|p| p.get_mut(property))
                .and_then(Value::as_object_mut)
                && let Value::Object(rule) = rule
            {
                target.extend(rule);
            }
        }
        let identifiers = json!([
            {"required": ["email"], "properties": {"email": {"type": "string"}}},
            {"required": ["phone"], "properties": {"phone": {"type": "string"}}},
        ]);
        let combined = ONE_IDENTIFIER
            .iter()
            .map(|s| (*s, "oneOf"))
            .chain(SOME_IDENTIFIER.iter().map(|s| (*s, "anyOf")));
        for (schema, keyword) in combined {
            if let Some(target) = schemas.get_mut(schema).and_then(Value::as_object_mut) {
                target.insert(keyword.into(), identifiers.clone());
            }
        }
        // A second factor is exactly one of a code, a recovery code or a
        // passkey (its request id with the credential).
        if let Some(target) = schemas.get_mut("MfaVerifyRequest").and_then(Value::as_object_mut) {
            target.insert("oneOf".into(), second_factor_forms());
        }
    }
    constrain_identifiers(doc, config);
}

/// The three forms of `MfaVerifyRequest`, each excluding the others' fields
/// (a field sent as `null` counts as absent, as the handler reads it), so a
/// body the schema accepts is one the handler takes.
fn second_factor_forms() -> Value {
    let present = |field: &str, kind: &str| json!({"required": [field], "properties": {field: {"type": kind}}});
    let fields = [
        ("totp", "string"),
        ("recovery_code", "string"),
        ("request_id", "string"),
        ("credential", "object"),
    ];
    let form = |own: &[&str]| {
        let mut schema = Map::new();
        schema.insert("required".into(), json!(own));
        let properties: Map<String, Value> = fields
            .iter()
            .filter(|(f, _)| own.contains(f))
            .map(|(f, kind)| ((*f).to_owned(), json!({"type": kind})))
            .collect();
        schema.insert("properties".into(), Value::Object(properties));
        let others: Vec<Value> = fields
            .iter()
            .filter(|(f, _)| !own.contains(f))
            .map(|(f, kind)| present(f, kind))
            .collect();
        schema.insert("not".into(), json!({"anyOf": others}));
        Value::Object(schema)
    };
    json!([
        form(&["totp"]),
        form(&["recovery_code"]),
        form(&["request_id", "credential"])
    ])
}

fn constrain_identifiers(doc: &mut Value, config: &Config) {
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    for (schema_name, schema) in schemas.iter_mut() {
        // A provider's claim map names userinfo fields (`"email": "mail"`),
        // and an identity shows the email a provider last sent, unparsed:
        // neither is an address forge validated.
        if schema_name.starts_with("Claims") || schema_name == "IdentityView" {
            continue;
        }
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, property) in properties.iter_mut() {
            if !is_string(property) {
                continue;
            }
            match name.as_str() {
                "email" => {
                    property["format"] = json!("email");
                    property["maxLength"] = json!(EMAIL_MAX);
                }
                "phone" => {
                    property["format"] = json!("phone");
                    property["maxLength"] = json!(PHONE_MAX);
                    property["pattern"] = json!(PHONE_PATTERN);
                    describe(
                        property,
                        "An international number with a leading `+` (any spacing), valid for its country; \
                         stored and shown in E.164.",
                    );
                }
                _ => {}
            }
            if NEW_PASSWORDS.contains(&(schema_name.as_str(), name.as_str())) {
                property["minLength"] = json!(config.password.min_length);
                property["maxLength"] = json!(config.password.max_length);
                describe(
                    property,
                    "Must pass the password policy: its length bounds and a strength score of at least \
                     `password.min_strength` (common or guessable passwords are refused with 400).",
                );
            }
        }
    }
}

/// A string, or a nullable string.
fn is_string(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "string",
        Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

fn describe(property: &mut Value, text: &str) {
    if property.get("description").is_none() {
        property["description"] = json!(text);
    }
}
