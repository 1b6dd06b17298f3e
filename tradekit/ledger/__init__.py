"""The SQLite ledger: the bot's memory and an exact, explained copy of the exchange.

This package owns every SQL statement of tradekit. ``Ledger`` is the trading loop's writer
(it alone creates and migrates a file), ``SideLedger`` the writer beside it (controls, the
phone), ``LedgerView`` every reader's read-only view. Stdlib only, so ``status`` and the phone
start without the trading stack.
"""

from tradekit.ledger.schema import VERSION
from tradekit.ledger.side import SideLedger
from tradekit.ledger.store import Ledger, now_ms
from tradekit.ledger.view import LedgerView, inspect

__all__ = ["VERSION", "Ledger", "LedgerView", "SideLedger", "inspect", "now_ms"]
