"""Ferry predictor."""
