"""The API's shapes: request bodies, views and the error body, one module per resource.

What a caller sends and sees lives here, in the HTTP layer; what is stored (``*Record`` and the
parts a record holds, e.g. ``TrainingOutput``) lives in ``functions.domain.records``. Every model
here is also a schema of ``openapi.yaml`` (generated from them, checked by a test).

Direction of the dependency: the use cases (``functions.services``) take the validated request
and return the view, so they import this package (and only it from ``functions.api``; this
package imports only the domain: tests/unit/test_import_contract.py). The alternative, services
taking domain values and the routes building the views, would copy every request field into a
second signature and move presigning (which needs the storage adapter) into the routes; passing
the request keeps each field defined once, which matters as the families add parameters.
"""
