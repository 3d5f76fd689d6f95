"""Live API documentation: the OpenAPI document (``document.py``, pure), Swagger UI's own files
(``swagger.py``), and the refresher that keeps the document on the serving versions' signatures
(``refresh.py``). ``ApiDocs`` is what the gateway's router hands ``/docs*`` and ``/openapi.json``."""

from ferry_gateway.apidocs.document import build, spec
from ferry_gateway.apidocs.refresh import Fetch, Refresher, fetch_metadata
from ferry_gateway.apidocs.swagger import ApiDocs

__all__ = ["ApiDocs", "Fetch", "Refresher", "build", "fetch_metadata", "spec"]
