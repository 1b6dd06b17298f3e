"""The drift sentinel: is the market still the one the deployed model was trained on, and does
the live loop still predict what the model predicts on the recorded candles?

    from tradekit.drift.reference import build_reference   # train time: into the manifest
    from tradekit.drift.check import check_drift, record   # model + data (+ ledger) -> drift/1
    from tradekit.sidecar import drift_path, latest_drift  # the report beside the ledger

Heavy libraries are imported inside the functions.
"""
