"""The API's documentation, behind login: the OpenAPI JSON, and a plain page listing the endpoints.

FastAPI's interactive /docs page loads Swagger UI from a CDN (unpinned, with inline script), so
it needed a hole in the CSP, was open to anyone and blank offline. This page is rendered on the
server from the same OpenAPI schema, like every other page: no script, no CDN, the same CSP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from tracker.web.context import CurrentUser, render

router = APIRouter(include_in_schema=False)
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Field:
    """A parameter or body field of an endpoint."""

    name: str
    where: str
    type: str
    required: bool
    description: str


@dataclass(frozen=True)
class Endpoint:
    """One method on one path, as the page lists it."""

    method: str
    path: str
    summary: str
    description: str
    fields: tuple[Field, ...]


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return str(schema.get("format") or schema.get("type") or "any")


def _body_fields(op: dict[str, Any], components: dict[str, Any]) -> list[Field]:
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    model = components.get(str(body.get("$ref", "")).rsplit("/", 1)[-1], {})
    required = set(model.get("required", ()))
    return [Field(name, "JSON body", _type(prop), name in required, str(prop.get("description", "")))
            for name, prop in model.get("properties", {}).items()]


def endpoints(schema: dict[str, Any]) -> list[Endpoint]:
    """Every endpoint of an OpenAPI schema, in path order, with its parameters and body fields."""
    components = schema.get("components", {}).get("schemas", {})
    found: list[Endpoint] = []
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            params = [Field(str(p["name"]), str(p["in"]), _type(p.get("schema", {})), bool(p.get("required")),
                            str(p.get("description", ""))) for p in op.get("parameters", ())]
            found.append(Endpoint(method.upper(), path, str(op.get("summary", "")),
                                  str(op.get("description", "")), tuple(params + _body_fields(op, components))))
    return found


@router.get("/openapi.json")
def openapi_json(request: Request, user: CurrentUser) -> Response:
    """The OpenAPI schema of /api, for API clients (logged in)."""
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def api_docs(request: Request, user: CurrentUser) -> Response:
    """The API's endpoints, how to authenticate, and where the OpenAPI schema is."""
    schema = request.app.openapi()
    return render(request, "api_docs.html", user, nav="api", description=schema.get("info", {}).get("description", ""),
                  endpoints=endpoints(schema))
