"""Who is calling: JWTs (verified against a JWKS or an HMAC secret), API keys (keyed hashes),
and the development key pair. ``authenticator.Authenticator`` turns a request's credential into a
``Principal`` (consumer, tier, scopes, model allow-list)."""
