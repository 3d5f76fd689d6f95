"""The HTTP edge around every request, each concern one ASGI class in the Starlette style
(``__init__(app, ...)``, ``__call__(scope, receive, send)``): request ids, the access log and
request counters, and the rendering of every error as the one envelope; plus the audit logger."""
