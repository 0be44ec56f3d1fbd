"""The API's operations as the contract lists them: which methods a path has, which query
parameters an operation declares.

Built from the OpenAPI document the resolver generates (``get_openapi_json_schema``, public
Powertools API) — the same document committed as ``openapi.yaml`` and turned into API Gateway's
routes — rather than from the resolver's compiled route tables, which are private attributes a
minor Powertools release may rename. The app builds it once at import: the API function's
SnapStart snapshot then holds it, and no request pays for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TEMPLATE_PARAMETER = re.compile(r"\{[^/{}]+\}")
# What a path parameter may hold: the characters the resolver's dynamic routes accept (RFC 3986
# unreserved and sub-delims, ':' and '@', the percent-encoded unsafe ones, and word characters), so
# a segment it will not route (e.g. a control character) is a 404 here too, not a 405.
_SEGMENT = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"


@dataclass(frozen=True)
class Operation:
    method: str  # upper case, as in the event
    path: str  # the OpenAPI template, e.g. /trainings/{job_id}
    query_parameters: frozenset[str]


def _path_pattern(template: str) -> re.Pattern[str]:
    """``/trainings/{job_id}`` -> one segment per parameter; trailing slashes allowed, as
    APIGatewayRestResolver allows them."""
    pieces = _TEMPLATE_PARAMETER.split(template)
    return re.compile("^" + _SEGMENT.join(re.escape(p) for p in pieces) + "/*$")


class RouteTable:
    """(method, path) -> operation, for the 405 answer and the undeclared-query-parameter check."""

    def __init__(self, paths: Mapping[str, Mapping[str, Any]]) -> None:
        """``paths``: an OpenAPI document's ``paths`` object."""
        self._paths: list[tuple[re.Pattern[str], dict[str, Operation]]] = []
        for template in sorted(paths, key=lambda t: len(_TEMPLATE_PARAMETER.findall(t))):
            operations = {
                method.upper(): Operation(
                    method=method.upper(),
                    path=template,
                    query_parameters=frozenset(
                        p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"
                    ),
                )
                for method, operation in paths[template].items()
            }
            self._paths.append((_path_pattern(template), operations))

    def _matching(self, path: str) -> list[dict[str, Operation]]:
        return [operations for pattern, operations in self._paths if pattern.match(path)]

    def allowed_methods(self, path: str) -> list[str]:
        """The methods the API has for a path (empty: no such path)."""
        return sorted({method for operations in self._matching(path) for method in operations})

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation a request is routed to: templates without parameters first, as the
        resolver tries its static routes first; None when the path or the method has none."""
        for operations in self._matching(path):
            if method.upper() in operations:
                return operations[method.upper()]
        return None
