"""Ferry gateway."""
