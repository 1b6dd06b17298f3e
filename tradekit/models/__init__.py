"""Models behind one interface (LightGBM, LSTM, Transformer), walk-forward training, the model
directory's manifest, and prediction for files and the live loop.

Public entry points::

    from tradekit.models.train import train            # features/1 -> model dir
    from tradekit.models.predict import load_model     # model dir -> LoadedModel
    LoadedModel.predict(frame) -> frame(symbol, timestamp, prediction)
    from tradekit.models.predict import predict_file   # model dir + features/1 -> predictions/1

Heavy libraries (numpy, pandas, lightgbm, torch) are imported inside the functions.
"""
