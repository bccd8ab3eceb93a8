"""The admin API's OpenAPI 3.1 document (served at `/admin/openapi.json`).

Its schemas are JSON Schema 2020-12 (OpenAPI 3.1 §4.8.24) and describe what the handlers in
certbound.endpoints.admin really answer: the end-to-end tests validate live responses against them.
Bodies are RFC 7591 client metadata; unknown members are kept, hence `additionalProperties`.
"""

from __future__ import annotations

from typing import Any

from certbound.clientmeta import CLIENT_SIGNING_ALGS, KNOWN_AUTH_METHODS
from certbound.config import SIGNING_ALGS
from certbound.keys import KEY_STATES
from certbound.legacyaudience import FLUSH_SECONDS

__all__ = ["admin_openapi"]

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}

_METADATA_PROPERTIES: dict[str, Any] = {
    "token_endpoint_auth_method": {"type": "string", "enum": sorted(KNOWN_AUTH_METHODS)},
    "grant_types": _STRINGS,
    "response_types": _STRINGS,
    "redirect_uris": _STRINGS,
    "scope": {"type": "string", "description": "space-separated subset of scopes_supported"},
    "client_name": {"type": "string"},
    "client_uri": {"type": "string", "format": "uri"},
    "logo_uri": {"type": "string", "format": "uri"},
    "tos_uri": {"type": "string", "format": "uri"},
    "policy_uri": {"type": "string", "format": "uri"},
    "contacts": _STRINGS,
    "software_id": {"type": "string"},
    "software_version": {"type": "string"},
    "jwks": {
        "type": "object",
        "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
        "required": ["keys"],
    },
    "jwks_uri": {"type": "string", "format": "uri"},
    "token_endpoint_auth_signing_alg": {"type": "string", "enum": list(CLIENT_SIGNING_ALGS)},
    "access_token_as_jwt": {"type": "boolean"},
    "tls_client_certificate_bound_access_tokens": {"type": "boolean"},
    "dpop_bound_access_tokens": {
        "type": "boolean",
        "description": "RFC 9449 §5.2: token requests must carry a DPoP proof (default false)",
    },
    "tls_client_auth_subject_dn": {"type": "string"},
    "tls_client_auth_san_dns": {"type": "string"},
    "tls_client_auth_san_uri": {"type": "string"},
    "tls_client_auth_san_ip": {"type": "string"},
    "tls_client_auth_san_email": {"type": "string"},
    "spiffe_id": {
        "type": "string",
        "pattern": "^spiffe://",
        "description": "spiffe_jwt, or tls_client_auth's subject (an X.509-SVID): the workload's "
        "SPIFFE ID, in a trust domain of the server's --federation file",
    },
    "federated_issuer": {
        "type": "string",
        "description": "federated_jwt: the name of an issuer of the server's --federation file",
    },
    "federated_claims": {
        "type": "object",
        "minProperties": 1,
        "description": "federated_jwt: claim -> rule, every rule must match a string claim: a "
        "string matches exactly, a list of strings any member exactly, a string ending in * by "
        "prefix (* alone is refused)",
        "additionalProperties": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            ]
        },
    },
}

_SCHEMAS: dict[str, Any] = {
    "ClientMetadata": {
        "description": "RFC 7591 §2 client metadata; unknown members are stored and returned.",
        "type": "object",
        "properties": _METADATA_PROPERTIES,
        "additionalProperties": True,
    },
    "ClientRequest": {
        "description": "Metadata plus what an administrator may choose: client_id (create only; on "
        "update it must equal the path's) and client_secret (8+ characters; fewer than 32 are "
        "accepted with a warning in the server log). Server-issued members are ignored.",
        "allOf": [
            _ref("ClientMetadata"),
            {
                "type": "object",
                "properties": {
                    "client_id": {"type": "string", "minLength": 1, "maxLength": 255},
                    "client_secret": {"type": "string", "minLength": 8},
                },
            },
        ],
    },
    "ClientInformation": {
        "description": "RFC 7591 §3.2.1 client information: the stored metadata (defaults filled) "
        "plus the server-issued members. client_secret appears only when it was just issued.",
        "allOf": [
            _ref("ClientMetadata"),
            {
                "type": "object",
                "properties": {
                    "client_id": {"type": "string", "minLength": 1},
                    "client_secret": {"type": "string", "minLength": 8},
                    "client_id_issued_at": {"type": "integer", "minimum": 0},
                    "client_secret_expires_at": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "0: never expires",
                    },
                    "legacy_audience_assertions": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "read views of client_secret_jwt and private_key_jwt clients: "
                        "assertions accepted only because of --assertion-audience legacy (their aud "
                        f"was the token endpoint), counted by every node; up to {FLUSH_SECONDS:g} s behind",
                    },
                    "legacy_audience_last_seen": {
                        "type": ["integer", "null"],
                        "minimum": 0,
                        "description": "when the last of those was accepted (epoch seconds); null: never",
                    },
                },
                "required": [
                    "client_id",
                    "client_id_issued_at",
                    "token_endpoint_auth_method",
                    "grant_types",
                    "scope",
                    "access_token_as_jwt",
                    "tls_client_certificate_bound_access_tokens",
                ],
                "dependentRequired": {"client_secret": ["client_secret_expires_at"]},
            },
        ],
    },
    "ClientWithSecret": {
        "allOf": [
            _ref("ClientInformation"),
            {"type": "object", "required": ["client_secret", "client_secret_expires_at"]},
        ],
    },
    "ClientList": {
        "type": "object",
        "properties": {
            "clients": {"type": "array", "items": _ref("ClientInformation")},
            "next": {
                "type": ["string", "null"],
                "description": "pass as `after` for the next page; null on the last page",
            },
        },
        "required": ["clients", "next"],
        "additionalProperties": False,
    },
    "SigningKey": {
        "description": "A server signing key (never its key material). active: it signs new "
        "tokens; retired: still published at /jwks while tokens it signed may be alive; expired: "
        "no longer published.",
        "type": "object",
        "properties": {
            "kid": {"type": "string", "minLength": 1, "description": "RFC 7638 thumbprint"},
            "alg": {"type": "string", "enum": list(SIGNING_ALGS)},
            "state": {"type": "string", "enum": list(KEY_STATES)},
            "created_at": {"type": "integer", "minimum": 0},
            "retired_at": {"type": ["integer", "null"], "minimum": 0},
        },
        "required": ["kid", "alg", "state", "created_at", "retired_at"],
        "additionalProperties": False,
    },
    "SigningKeyList": {
        "type": "object",
        "properties": {
            "keys": {
                "type": "array",
                "items": _ref("SigningKey"),
                "description": "the active key first, then the newest",
            }
        },
        "required": ["keys"],
        "additionalProperties": False,
    },
    "Error": {
        "description": "RFC 6749 §5.2 / RFC 7591 §3.2.2 error response. For "
        "`invalid_client_metadata` and `invalid_redirect_uri` the description starts with the "
        "metadata member at fault (e.g. `scope includes values ...`).",
        "type": "object",
        "properties": {
            "error": {"type": "string", "minLength": 1},
            "error_description": {"type": "string"},
        },
        "required": ["error"],
        "additionalProperties": False,
    },
}

_CLIENT_ID_PARAMETER = {
    "name": "client_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
}

_UNAUTHORIZED = _error("no admin token, or a wrong one (`WWW-Authenticate: Bearer`)")
_NOT_FOUND = _error("no such client, or the admin API is disabled (no admin token configured)")
_TOO_LARGE = _error("the body is larger than 256 KiB")
_DISABLED = _error("the admin API is disabled (no admin token configured)")


def _body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema_name)}}}


def admin_openapi(issuer: str) -> dict[str, Any]:
    """The document, with `issuer` as the server URL."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "certbound admin API",
            "version": "1",
            "description": "Manage OAuth 2.0 clients and the server's signing keys. Every "
            "operation needs `Authorization: Bearer "
            "<admin token>`; without a configured admin token the API answers 404.",
        },
        "servers": [{"url": issuer}],
        "security": [{"adminToken": []}],
        "paths": {
            "/admin/clients": {
                "get": {
                    "operationId": "listClients",
                    "summary": "List clients, ordered by client_id (keyset pagination)",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                        },
                        {"name": "after", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "token_endpoint_auth_method",
                            "in": "query",
                            "schema": {"type": "string", "enum": sorted(KNOWN_AUTH_METHODS)},
                        },
                    ],
                    "responses": {
                        "200": _json(_ref("ClientList"), "a page of clients"),
                        "400": _error("bad limit or unknown method (`invalid_request`)"),
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                    },
                },
                "post": {
                    "operationId": "createClient",
                    "summary": "Register a client",
                    "requestBody": _body("ClientRequest"),
                    "responses": {
                        "201": _json(_ref("ClientInformation"), "created; client_secret shown once"),
                        "400": _error("`invalid_client_metadata` or `invalid_redirect_uri`"),
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                        "413": _TOO_LARGE,
                    },
                },
            },
            "/admin/clients/{client_id}": {
                "parameters": [_CLIENT_ID_PARAMETER],
                "get": {
                    "operationId": "getClient",
                    "responses": {
                        "200": _json(_ref("ClientInformation"), "the client"),
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                    },
                },
                "put": {
                    "operationId": "replaceClient",
                    "summary": "Replace the client's metadata (validated as at registration). The "
                    "secret is kept unless client_secret is given or the new method needs a new one; "
                    "a method without a secret drops it.",
                    "requestBody": _body("ClientRequest"),
                    "responses": {
                        "200": _json(_ref("ClientInformation"), "the updated client"),
                        "400": _error(
                            "`invalid_client_metadata`, `invalid_redirect_uri`, or a client_id "
                            "in the body that differs from the path (`invalid_request`)"
                        ),
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                        "413": _TOO_LARGE,
                    },
                },
                "delete": {
                    "operationId": "deleteClient",
                    "summary": "Delete the client and its reference tokens",
                    "responses": {
                        "204": {"description": "deleted"},
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                    },
                },
            },
            "/admin/clients/{client_id}/rotate-secret": {
                "parameters": [_CLIENT_ID_PARAMETER],
                "post": {
                    "operationId": "rotateClientSecret",
                    "summary": "Issue a new secret; the old one stops working at once",
                    "responses": {
                        "200": _json(_ref("ClientWithSecret"), "the client with its new secret"),
                        "400": _error("the client's method has no secret (`invalid_client_metadata`)"),
                        "401": _UNAUTHORIZED,
                        "404": _NOT_FOUND,
                    },
                },
            },
            "/admin/keys": {
                "get": {
                    "operationId": "listSigningKeys",
                    "summary": "The server's signing keys: the active one first, then the newest",
                    "responses": {
                        "200": _json(_ref("SigningKeyList"), "the keys"),
                        "401": _UNAUTHORIZED,
                        "404": _DISABLED,
                    },
                },
            },
            "/admin/keys/rotate": {
                "post": {
                    "operationId": "rotateSigningKey",
                    "summary": "Add a new active signing key and retire the others; every node "
                    "publishes it within 30 s, and retired keys stay published until the tokens "
                    "they signed have expired",
                    "responses": {
                        "200": _json(_ref("SigningKey"), "the new active key"),
                        "401": _UNAUTHORIZED,
                        "404": _DISABLED,
                    },
                },
            },
            "/admin/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": _json({"type": "object"}, "the OpenAPI document"),
                        "404": _NOT_FOUND,
                    },
                },
            },
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }
