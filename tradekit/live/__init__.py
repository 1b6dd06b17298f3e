"""The live loop (``tradekit run``): engine, brokers (paper, exchange), SQLite ledger,
reconciliation, controls. Light modules (ledger, status, sdnotify) import only the stdlib."""
