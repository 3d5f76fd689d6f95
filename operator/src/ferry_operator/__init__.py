"""Ferry operator."""
