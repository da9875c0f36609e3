"""gRPC API (``grpcio``): the same recommend and ingest calls as HTTP, for shops that use it.

``freshrec.proto`` is the contract; ``freshrec_pb2*.py`` are generated from it and committed
(regenerate with ``python -m freshrec.rpc.generate``); ``server.py`` serves it over the same
``RecommendService`` as the HTTP routes, so cache, A/B arms, time budget and attribution behave
the same on both.
"""
