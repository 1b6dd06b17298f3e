"""``tradekit serve``: a web dashboard, the ``/api/v1`` REST API and ``/metrics`` over the
ledger's read-only view, in one light process (Starlette on uvicorn; no pandas, numpy, ccxt or
models are imported, pyarrow only when a chart asks for candles).

``site`` fixes what is served from the config; ``api`` builds the JSON documents, ``pages`` the
HTML from the same documents, ``metrics`` the Prometheus text, ``files`` reads the sources
beside the ledger; ``app`` wires the routes and the token check; ``server`` binds and runs.
"""
