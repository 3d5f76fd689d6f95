"""The one way a Ferry component reads its environment: a table of documented variables.

Each component declares its variables once (name, meaning, default, parser) in its own config
module; ``load`` reads and validates them all before any server or kopf starts, and ``help_text``
prints the same table in ``--help``, so the documentation cannot drift from the code. A bad value
stops the process with exit status 2 and the variable's name (see ``exit_on_error``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn


class ConfigError(ValueError):
    """A setting with a bad value: names the variable (or flag) and the reason."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class Var:
    """One environment variable: its name, what it does, its default (None: unset) and parser."""

    name: str
    help: str
    default: str | None = None
    parse: Callable[[str], Any] = str
    secret: bool = False  # never echoed back in an error message

    def read(self, environ: Mapping[str, str]) -> Any:
        raw = environ.get(self.name)
        if raw is None or raw == "":
            raw = self.default
        if raw is None:
            return None
        try:
            return self.parse(raw)
        except (ValueError, TypeError) as exc:
            if not self.secret:
                raise ConfigError(self.name, f"{raw!r}: {exc}") from None
            # A parser's own message may quote the value (int's does): never echo a secret.
            reason = str(exc).replace(raw, "<hidden>") if raw else str(exc)
            raise ConfigError(self.name, f"<hidden>: {reason}") from None


def load(table: Iterable[Var], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every variable of ``table`` parsed, by name; raises ConfigError for the first bad one."""
    env = os.environ if environ is None else environ
    return {var.name: var.read(env) for var in table}


def environment() -> Mapping[str, str]:
    """The process environment: what config modules pass to ``load`` (the one place it is read)."""
    return os.environ


def help_text(table: Iterable[Var], title: str = "Environment") -> str:
    """The table as ``--help`` prints it (for argparse with RawDescriptionHelpFormatter)."""
    rows = list(table)
    width = max((len(v.name) for v in rows), default=0)
    lines = [f"{title}:"]
    for v in rows:
        default = f" (default: {v.default})" if v.default not in (None, "") and not v.secret else ""
        lines.append(f"  {v.name.ljust(width)}  {v.help}{default}")
    return "\n".join(lines)


def exit_on_error(prog: str, error: ConfigError) -> NoReturn:
    print(f"{prog}: invalid configuration: {error}", file=sys.stderr)
    sys.exit(2)


@contextmanager
def or_exit(prog: str) -> Iterator[None]:
    """Run a block that loads configuration; a ConfigError in it ends the process with status 2."""
    try:
        yield
    except ConfigError as exc:
        exit_on_error(prog, exc)


# ---- parsers: each raises ValueError with a reason a user can act on --------------------------


def positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not value > 0:
        raise ValueError("must be > 0")
    return value


def non_negative_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value <= 0:  # "must be >= 0" would be wrong advice for -3: 0 is refused too
        raise ValueError("must be > 0")
    return value


def port(raw: str) -> int:
    value = non_negative_int(raw)
    if value > 65535:
        raise ValueError("must be a port number, 0-65535")
    return value


def boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        lowered = raw.strip().lower()
        if lowered not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return lowered

    return parse


def csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())
