"""The dev MLflow's trust in the operator's webhook receiver (mounted as sitecustomize.py).

MLflow's webhook sender verifies the receiver's certificate against certifi's bundle only: its
session ignores REQUESTS_CA_BUNDLE and SSL_CERT_FILE (trust_env=False), and the image's bundle is
read-only. So every Python process of the server (it runs its workers as children) starts by
pointing certifi at a copy of that bundle with the receiver's CA appended, before requests reads
it. Only the chart's dev MLflow gets this; a real registry's administrator appends the CA to
certifi's file (the operator's README, Registry webhooks).
"""

import os
import tempfile

import certifi

_extra = os.environ.get("FERRY_EXTRA_CA_FILE", "")
if _extra and os.path.exists(_extra):
    with open(certifi.where(), "rb") as roots, open(_extra, "rb") as ca:
        _pem = roots.read() + b"\n" + ca.read()
    # One file per process: the server and its workers start at the same moment.
    _fd, _bundle = tempfile.mkstemp(prefix="ferry-ca-", suffix=".pem")
    with os.fdopen(_fd, "wb") as out:
        out.write(_pem)
    certifi.where = lambda: _bundle
