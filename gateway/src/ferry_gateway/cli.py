"""``ferry``: manage API keys in a consumers file and mint development tokens.

ferry keys create --consumer NAME [--file F] [--tier T] [--scopes predict,preview] [--expires-in S]
ferry keys revoke --consumer NAME --id KEY_ID [--file F]
ferry keys list [--file F]
ferry keys patch --consumer NAME [--namespace NS] [--expires-in S] [--dev]   # a Consumer: the hash inline
ferry keys secret --consumer NAME --secret SECRET [--namespace NS] [--dev]   # ...or in a Secret
ferry token --consumer NAME [--scopes ...] [--tier T] [--expires-in S] [--audience AUD]
ferry jwks            # the development JWKS (what `ferry-gateway --dev` trusts)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from ferry_common.contract import LABEL_API_KEY, LABEL_CONSUMER
from ferry_common.timefmt import format_time, parse_time

from ferry_gateway import config
from ferry_gateway.auth.apikeys import (
    PEPPER_ENV,
    PEPPER_FILE_ENV,
    generate_key,
    hash_key,
    key_id,
    load_pepper,
)
from ferry_gateway.auth.devkeys import DEV_AUDIENCE, DEV_ISSUER, dev_jwks, mint_token
from ferry_gateway.config import ConfigError, Settings
from ferry_gateway.consumers.crd import SCOPES
from ferry_gateway.consumers.registry import DEV_CONSUMERS, parse_consumers_file


def _scopes(value: str) -> list[str]:
    scopes = [s.strip() for s in value.split(",") if s.strip()]
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown scope(s) {', '.join(bad)}; known: {', '.join(SCOPES)}")
    return scopes


def _positive(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return n


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"consumers": []}
    text = path.read_text()
    parse_consumers_file(text, str(path))  # refuse to edit a file the gateway would reject
    doc = yaml.safe_load(text) or {}
    doc.setdefault("consumers", [])
    return dict(doc)


def _save(path: Path, doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, sort_keys=False)
    parse_consumers_file(text, str(path))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # the gateway never sees half a file


def keys_create(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    doc = _load(path)
    entry = next((c for c in doc["consumers"] if c.get("name") == args.consumer), None)
    if entry is None:
        entry = {
            "name": args.consumer,
            "tier": args.tier or "free",
            "scopes": args.scopes or ["predict"],
            "apiKeys": [],
        }
        doc["consumers"].append(entry)
        print(f"created consumer {args.consumer} (tier {entry['tier']})", file=sys.stderr)
    else:
        if args.tier:
            entry["tier"] = args.tier
        if args.scopes:
            entry["scopes"] = args.scopes
    key = generate_key()
    pepper = load_pepper(
        settings.api_key_pepper, settings.api_key_pepper_file, settings.dev_dir, dev=args.dev
    )
    stored = hash_key(pepper, key)
    now = time.time()
    record: dict[str, Any] = {"hash": stored, "createdAt": format_time(now)}
    if args.expires_in:
        record["expiresAt"] = format_time(now + args.expires_in)
    entry.setdefault("apiKeys", []).append(record)
    _save(path, doc)
    print(
        f"key {key_id(stored)} for {args.consumer} written to {path}; the key is shown once:", file=sys.stderr
    )
    print(key)
    return 0


def keys_patch(args: argparse.Namespace, settings: Settings) -> int:
    """A new key's keyed hash as a JSON patch appending it to a Consumer's apiKeys (stdout).

    For ``kubectl patch consumer NAME --type json -p "$(ferry keys patch ...)"``: the hash lives
    in the Consumer, so the gateway needs no access to Secrets; the key goes to the terminal once
    (stderr) and is stored nowhere.
    """
    pepper = load_pepper(
        settings.api_key_pepper, settings.api_key_pepper_file, settings.dev_dir, dev=args.dev
    )
    key = generate_key()
    stored = hash_key(pepper, key)
    entry: dict[str, Any] = {"hash": stored}
    if args.expires_in:
        entry["expiresAt"] = format_time(time.time() + args.expires_in)
    print(json.dumps([{"op": "add", "path": "/spec/apiKeys/-", "value": entry}]))
    print(
        f"key {key_id(stored)} for Consumer {args.namespace}/{args.consumer}: the patch above holds "
        f"only its hash. The key is shown once, here, and stored nowhere:",
        file=sys.stderr,
    )
    print(key, file=sys.stderr)
    return 0


def keys_secret(args: argparse.Namespace, settings: Settings) -> int:
    """A new key's keyed hash as a Kubernetes Secret on stdout (for `kubectl apply -f -`).

    The Secret holds only the hash: the key itself goes to the terminal once (stderr, so the pipe
    into kubectl never carries it) and is stored nowhere, as with `keys create`. A Secret dump,
    a backup or a GitOps repository holding these Secrets then holds nothing a caller can use.
    """
    pepper = load_pepper(
        settings.api_key_pepper, settings.api_key_pepper_file, settings.dev_dir, dev=args.dev
    )
    key = generate_key()
    stored = hash_key(pepper, key)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": args.secret,
            "namespace": args.namespace,
            "labels": {LABEL_API_KEY: "true", LABEL_CONSUMER: args.consumer},
        },
        "type": "Opaque",
        "stringData": {"apiKey": stored},
    }
    print(yaml.safe_dump(secret, sort_keys=False), end="")
    ref: dict[str, Any] = {"name": args.secret}
    if args.expires_in:
        ref["expiresAt"] = format_time(time.time() + args.expires_in)
    patch = json.dumps([{"op": "add", "path": "/spec/apiKeys/-", "value": ref}])
    print(
        f"key {key_id(stored)} for {args.consumer}: the Secret above holds only its hash; "
        f"attach it with:\n"
        f"  kubectl -n {args.namespace} patch consumer {args.consumer} --type json -p '{patch}'\n"
        f"the key is shown once, here, and stored nowhere:",
        file=sys.stderr,
    )
    print(key, file=sys.stderr)
    return 0


def keys_revoke(args: argparse.Namespace, _: Settings) -> int:
    path = Path(args.file)
    doc = _load(path)
    for c in doc["consumers"]:
        if c.get("name") != args.consumer:
            continue
        for k in c.get("apiKeys", []):
            if key_id(k["hash"]) == args.id:
                k["revoked"] = True
                _save(path, doc)
                print(f"revoked key {args.id} of {args.consumer}", file=sys.stderr)
                return 0
    print(f"ferry keys revoke: no key {args.id!r} for consumer {args.consumer!r} in {path}", file=sys.stderr)
    return 1


def keys_list(args: argparse.Namespace, _: Settings) -> int:
    doc = _load(Path(args.file))
    rows = [("CONSUMER", "TIER", "KEY ID", "CREATED", "EXPIRES", "STATE")]
    now = time.time()
    for c in doc["consumers"]:
        for k in c.get("apiKeys", []):
            expires = k.get("expiresAt")
            exp_ts = expires.timestamp() if isinstance(expires, datetime) else None
            if isinstance(expires, str):
                exp_ts = parse_time(expires)
            state = (
                "revoked"
                if k.get("revoked")
                else ("expired" if exp_ts is not None and exp_ts <= now else "active")
            )
            rows.append(
                (
                    c["name"],
                    c.get("tier", "free"),
                    key_id(k["hash"]),
                    str(k.get("createdAt", "-")),
                    str(expires or "never"),
                    state,
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def token(args: argparse.Namespace, settings: Settings) -> int:
    scopes = None if args.scopes is None else [s for group in args.scopes for s in group]
    tier = args.tier
    # The gateway gives a token only what its claims grant (a Consumer of the same name lends it
    # nothing), so this dev identity provider writes a dev consumer's tier and scopes into it.
    dev = next((c for c in DEV_CONSUMERS if c.name == args.consumer), None)
    if dev is not None:
        scopes = sorted(dev.scopes) if scopes is None else scopes
        tier = dev.tier if tier is None else tier
    print(
        mint_token(settings.dev_dir, args.consumer, scopes, tier, args.expires_in, args.audience, args.issuer)
    )
    return 0


def jwks(_: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(dev_jwks(settings.dev_dir), indent=2))
    return 0


def parser(consumers_file: str = config.DEFAULT_CONSUMERS_FILE) -> argparse.ArgumentParser:
    """``consumers_file``: the --file default, $FERRY_CONSUMERS_FILE as config.py read it."""
    default_file = consumers_file
    p = argparse.ArgumentParser(
        prog="ferry",
        description="Ferry gateway credentials: API keys and dev tokens.",
        epilog=config.help_text(config.CLI_ENVIRONMENT),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    keys = sub.add_parser("keys", help="create, revoke and list API keys in a consumers file")
    ks = keys.add_subparsers(dest="keys_command", required=True)
    pepper_help = f"the key-hash secret comes from ${PEPPER_ENV} or ${PEPPER_FILE_ENV}"
    c = ks.add_parser(
        "create",
        help="create a key (printed once) and store its keyed hash",
        description=f"Create an API key; {pepper_help} (or the dev pepper with --dev).",
    )
    c.add_argument("--consumer", required=True)
    c.add_argument("--file", default=default_file, help=f"consumers YAML (default {default_file})")
    c.add_argument("--tier", help="tier for a new consumer (default free), or change it")
    c.add_argument(
        "--scopes", type=_scopes, help=f"comma-separated, from {', '.join(SCOPES)} (default predict)"
    )
    c.add_argument("--expires-in", type=_positive, metavar="SECONDS", help="the key stops working after this")
    c.add_argument(
        "--dev", action="store_true", help="use the development pepper (matches ferry-gateway --dev)"
    )
    c.set_defaults(func=keys_create)
    pa = ks.add_parser(
        "patch",
        help="a new key's hash as a JSON patch for a Consumer (cluster consumers)",
        description="Print a JSON patch appending a new API key's keyed hash to a Consumer's apiKeys, "
        'for `kubectl patch consumer NAME --type json -p "$(ferry keys patch ...)"`; the key is '
        f"printed once on stderr. {pepper_help} (or the dev pepper with --dev): the gateway's own, "
        "or its keys cannot match.",
    )
    pa.add_argument("--consumer", required=True, help="the Consumer resource the key is for")
    pa.add_argument("--namespace", default="ferry", help="namespace of the Consumer (default ferry)")
    pa.add_argument(
        "--expires-in", type=_positive, metavar="SECONDS", help="the key stops working after this"
    )
    pa.add_argument(
        "--dev", action="store_true", help="use the development pepper (matches ferry-gateway --dev)"
    )
    pa.set_defaults(func=keys_patch)
    sc = ks.add_parser(
        "secret",
        help="a new key's hash as a labelled Kubernetes Secret (cluster consumers)",
        description="Print a Secret holding a new API key's keyed hash, for `kubectl apply -f -`; "
        f"the key is printed once on stderr. {pepper_help} (or the dev pepper with --dev): the "
        "gateway's own, or its keys cannot match.",
    )
    sc.add_argument("--consumer", required=True, help="the Consumer resource the key is for")
    sc.add_argument("--secret", required=True, help="name of the Secret to create")
    sc.add_argument("--namespace", default="ferry", help="namespace of the Consumer (default ferry)")
    sc.add_argument("--expires-in", type=_positive, metavar="SECONDS", help="expiry for the apiKeys entry")
    sc.add_argument(
        "--dev", action="store_true", help="use the development pepper (matches ferry-gateway --dev)"
    )
    sc.set_defaults(func=keys_secret)
    r = ks.add_parser("revoke", help="revoke a key; a running gateway refuses it on the next request")
    r.add_argument("--consumer", required=True)
    r.add_argument("--id", required=True, help="the KEY ID shown by `ferry keys list`")
    r.add_argument("--file", default=default_file)
    r.set_defaults(func=keys_revoke)
    ls = ks.add_parser("list", help="list keys (ids and states, never the keys)")
    ls.add_argument("--file", default=default_file)
    ls.set_defaults(func=keys_list)

    t = sub.add_parser("token", help="mint a development JWT signed with the dev key pair")
    t.add_argument("--consumer", required=True, help="becomes the sub claim")
    t.add_argument(
        "--scopes",
        type=_scopes,
        nargs="+",
        default=None,
        metavar="SCOPE",
        help="scopes, space- or comma-separated (default: dev-free's or dev-pro's for those; "
        "otherwise no claim, which the gateway reads as predict)",
    )
    t.add_argument(
        "--tier", help="tier claim (default: dev-free's or dev-pro's for those; otherwise none: free)"
    )
    t.add_argument("--expires-in", type=_positive, default=3600, metavar="SECONDS", help="default 3600")
    t.add_argument("--audience", default=DEV_AUDIENCE, help=f"default {DEV_AUDIENCE}")
    t.add_argument("--issuer", default=DEV_ISSUER, help=f"default {DEV_ISSUER}")
    t.set_defaults(func=token)

    j = sub.add_parser("jwks", help="print the development JWKS")
    j.set_defaults(func=jwks)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        settings = config.load()
    except ConfigError as exc:
        print(f"ferry: invalid configuration: {exc}", file=sys.stderr)
        return 2
    args = parser(settings.consumers_file or config.DEFAULT_CONSUMERS_FILE).parse_args(argv)
    try:
        return int(args.func(args, settings))
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"ferry: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
