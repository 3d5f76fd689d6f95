"""Authentication settings refused at start-up (finding 12): a JWKS fetched over plain http."""

from __future__ import annotations

import pytest
from ferry_gateway import config
from ferry_gateway.config import ConfigError


@pytest.mark.parametrize(
    "url", ["http://idp.example/jwks", "HTTP://127.0.0.1:8000/jwks", "idp.example/jwks", "https://"]
)
def test_a_jwks_url_that_is_not_https_is_refused_naming_the_variable(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config.load(environ={"FERRY_JWKS_URL": url})
    assert refused.value.name == "FERRY_JWKS_URL" and "https://" in str(refused.value)


def test_an_https_jwks_url_and_its_refresh_interval_are_read() -> None:
    s = config.load(
        environ={"FERRY_JWKS_URL": "https://idp.example/jwks", "FERRY_JWKS_REFRESH_SECONDS": "30"}
    )
    assert (s.jwks_url, s.jwks_refresh_seconds) == ("https://idp.example/jwks", 30.0)
    assert config.load(environ={}).jwks_refresh_seconds == 300.0
    with pytest.raises(ConfigError) as refused:
        config.load(environ={"FERRY_JWKS_REFRESH_SECONDS": "0"})
    assert refused.value.name == "FERRY_JWKS_REFRESH_SECONDS"
