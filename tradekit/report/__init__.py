"""What a person reads about the bot, built once and drawn many ways (stdlib only at import).

- :mod:`tradekit.report.snapshot`: the bot now, one typed :class:`Snapshot` of the ledger
  (``status/1`` as JSON), drawn by ``status``, the phone, ``ask``, ``summary`` and ``serve``;
- :mod:`tradekit.report.account`: profit, balance, daily and per-pair documents (Freqtrade's
  shapes), read by the REST API and the phone;
- :mod:`tradekit.report.model`: the deployed model and its gate receipt;
- :mod:`tradekit.report.text` and :mod:`tradekit.report.phone`: the CLI table and the
  phone's texts of those documents;
- :mod:`tradekit.report.summary`: the day or week for the 20:00 phone message (and its PNG);
- :mod:`tradekit.report.trades`: ``tradekit trades``, closed trades from a file or a ledger;
- :mod:`tradekit.report.fmt`: money, percent, quantities and times in the reader's language;
- :mod:`tradekit.report.charts`: what the PNGs share (matplotlib, loaded by the caller).
"""
