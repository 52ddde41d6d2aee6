"""The REST face of the fleet manager (FastAPI).

The gateway owns no data and no business rules. It authenticates the caller through identity (an early
401, and ``/v1/me``), validates the shape of each request, forwards it over gRPC to the service that
owns the answer with the caller's key as ``authorization: Bearer <key>`` (every service checks it
again), and renders answers as JSON and failures as RFC 9457 problem bodies.

There is no ``service_layer/`` here on purpose: each route is one remote call, so a use-case layer
would only forward arguments a second time.
"""
