"""Just enough PromQL lexing to list the metric names an expression selects.

Syntax is checked by the real parser (promtool, Prometheus); this only finds the names, so tests
can compare them with what the code exports.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<matchers>\{(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^{}"'])*\})
  | (?P<range>\[[^\]]*\])
  | (?P<var>\$\{?\w+\}?)
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)(?:ms|s|m|h|d|w|y)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>(),=@])
    """,
    re.VERBOSE,
)
KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left"}
    | {"group_right", "atan2", "inf", "nan", "start", "end"}
)
_LABEL_LIST_BEFORE = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})


class PromQLSyntaxError(ValueError):
    pass


def tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise PromQLSyntaxError(f"cannot lex {expr[pos : pos + 20]!r} in {expr!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group()))
        pos = m.end()
    return out


def metric_names(expr: str) -> set[str]:
    """Names of the metrics an expression selects (bare names and __name__="..." matchers)."""
    toks = tokens(expr)
    names: set[str] = set()
    depth_label_list = False
    for i, (kind, text) in enumerate(toks):
        if kind == "matchers":
            names.update(re.findall(r'__name__\s*=\s*"([^"]+)"', text))
            continue
        if kind != "ident":
            continue
        prev = toks[i - 1][1] if i else ""
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if prev == "(" and i >= 2 and toks[i - 2][1] in _LABEL_LIST_BEFORE:
            depth_label_list = True
        if depth_label_list:
            if nxt == ")":
                depth_label_list = False
            continue
        if text in KEYWORDS or nxt == "(" or nxt in ("by", "without"):
            continue
        names.add(text)
    return names


def substitute_grafana_variables(expr: str, rate_interval: str = "1m") -> str:
    """A dashboard expression as Grafana would send it with every variable at "All"."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__range", "1h")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)
