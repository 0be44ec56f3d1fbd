"""The route table behind 405 answers and the undeclared-query-parameter check is the contract's."""

from __future__ import annotations

from pathlib import Path

import yaml

from functions.api.openapi import generate_spec
from functions.api.route_table import RouteTable

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"


def _table_of_the_app() -> RouteTable:
    generate_spec()  # sets the placeholder environment the app's import needs
    from functions.api.app import ROUTES

    return ROUTES


def test_the_app_routes_exactly_the_operations_of_the_committed_contract() -> None:
    committed = yaml.safe_load(OPENAPI.read_text())["paths"]
    routes = _table_of_the_app()
    for template, operations in committed.items():
        path = template.replace("{", "").replace("}", "")  # a parameter's name is a fine value
        assert routes.allowed_methods(path) == sorted(m.upper() for m in operations), template
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            found = routes.operation(method, path)
            assert found is not None and found.path == template
            assert found.query_parameters == declared, (method, template)


def test_methods_and_operations_by_path() -> None:
    table = RouteTable(
        {
            "/jobs": {"get": {"parameters": [{"name": "status", "in": "query"}]}, "post": {}},
            "/jobs/{job_id}": {"get": {"parameters": [{"name": "job_id", "in": "path"}]}},
            "/jobs/latest": {"delete": {}},
        }
    )
    assert table.allowed_methods("/jobs") == ["GET", "POST"]
    assert table.allowed_methods("/jobs//") == ["GET", "POST"]
    assert table.allowed_methods("/jobs/abc") == ["GET"]
    assert table.allowed_methods("/jobs/abc/more") == []
    assert table.allowed_methods("/nothing") == []
    assert table.allowed_methods("/jobs/\x84") == []  # a segment the resolver does not route: 404
    # a path matching a template with and one without parameters has the methods of both;
    # a request goes to the one without parameters first, as the resolver's static routes do
    assert table.allowed_methods("/jobs/latest") == ["DELETE", "GET"]
    latest = table.operation("delete", "/jobs/latest")
    assert latest is not None and latest.path == "/jobs/latest"
    by_id = table.operation("GET", "/jobs/latest")
    assert by_id is not None and by_id.path == "/jobs/{job_id}" and by_id.query_parameters == frozenset()
    listing = table.operation("GET", "/jobs")
    assert listing is not None and listing.query_parameters == {"status"}
    assert table.operation("PUT", "/jobs") is None
