"""Every fenced block in the docs is named and run by a test: the harness.

A block is named by an HTML comment on the line right before its fence, invisible when rendered::

    <!-- snippet: curl-v1-api-key -->
    ```bash
    curl -s ...
    ```

A test module that runs blocks claims them once, at module level, and then runs each by name::

    GUIDE = snippets.claim("docs/clients.md", "setup", "curl-v1-api-key")
    def test_curl(...):
        out = GUIDE.bash("curl-v1-api-key", env={...})

A block that is exercised by a test which does not read it (``make up && make demo`` is what the
node tier's stack fixture runs) is tied to that test instead: ``snippets.tie(DOC, NAME,
by="tests/node/test_stack.py::test_x", why=...)``.

``coverage(root)`` (run by a unit test) reads every README.md and docs/*.md and every test module
(by its source, not by importing it) and lists what is wrong: a block without a name, a name twice
in one document, a name nobody claims or ties, a claim naming no block, a claimed name that its
module never runs (a literal ``.bash("NAME"`` or another runner call), a tie to a test that does
not exist. At run time a runner refuses a name its claim does not hold, so a claim and its runs
cannot drift apart.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
NAME = re.compile(r"^<!--\s*snippet:\s*([a-z0-9][a-z0-9-]*)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
# The methods of Claim that run (or read) a block: coverage() looks for them by name.
RUNNERS = frozenset({"bash", "exports", "python", "browser", "text"})
# unshare(1): new network, PID and mount namespaces; bash is the namespace's init, so whatever
# the block left in the background is killed when it exits.
ISOLATED = [
    "unshare",
    "--net",
    "--pid",
    "--mount",
    "--fork",
    "--mount-proc",
    "bash",
    "-euo",
    "pipefail",
    "-c",
    'ip link set lo up && mkdir -p .local && mount -t tmpfs ferry-snippet .local && source "$1"',
    "snippet",
]
PRUNE = frozenset({".venv", "node_modules", "__pycache__", ".local", ".git"})


@dataclass(frozen=True)
class Block:
    doc: str  # the document, relative to the repository, posix
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    name: str | None


def parse(text: str, doc: str) -> list[Block]:
    """The fenced blocks of a Markdown text, each with the name on the line before its fence."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = lines[i].strip()
            if close.startswith(fence[0] * len(fence)) and close.strip(fence[0]) == "":
                break
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        prev = NAME.match(lines[start - 1].strip()) if start > 0 else None
        lang = m["info"].strip().split(" ")[0] if m["info"].strip() else ""
        blocks.append(Block(doc, start + 1, lang, "\n".join(body) + "\n", prev[1] if prev else None))
        i += 1
    return blocks


def documents(root: Path = REPO) -> list[Path]:
    """Every README.md in the repository (outside virtualenvs, caches and .local) and docs/*.md."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in PRUNE and not d.startswith("."))
        if "README.md" in filenames:
            found.append(Path(dirpath) / "README.md")
    found += sorted((root / "docs").glob("*.md"))
    return sorted(set(found))


def blocks(doc: str, root: Path = REPO) -> list[Block]:
    return parse((root / doc).read_text(), doc)


def named(doc: str, root: Path = REPO) -> dict[str, Block]:
    out: dict[str, Block] = {}
    for b in blocks(doc, root):
        if b.name is not None:
            if b.name in out:
                raise ValueError(f"{doc}:{b.line}: snippet {b.name!r} is named twice")
            out[b.name] = b
    return out


def json_docs(text: str) -> list[Any]:
    """The JSON documents in what a block printed, in order (curl ends none with a newline);
    lines that are not JSON are skipped."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                doc, i = decoder.raw_decode(text, i)
            except ValueError:
                i += 1
                continue
            docs.append(doc)
        else:
            i += 1
    return docs


# ---- the registry: claims and ties --------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass(frozen=True)
class Claim:
    """The blocks of one document that one test module runs."""

    doc: str
    names: tuple[str, ...]
    root: Path = REPO

    def block(self, name: str) -> Block:
        if name not in self.names:
            raise KeyError(f"snippet {name!r} is not claimed by this module's claim({self.doc!r}, ...)")
        found = named(self.doc, self.root).get(name)
        if found is None:
            raise KeyError(f"{self.doc} has no block named {name!r}")
        return found

    def text(self, name: str) -> str:
        """The block's text, for a test that applies or validates it (YAML, JSON)."""
        return self.block(name).code

    def bash(
        self,
        name: str,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        check: bool = True,
        timeout: float = 120,
        isolated: bool = False,
        before: str = "",
    ) -> Ran:
        """Run a shell block with ``bash -euo pipefail``; ``env`` is added to this process's.

        ``isolated``: in network, process and mount namespaces of its own (root only), for a block
        that serves on fixed ports (8080, 5000, ...) as the READMEs' quick starts do. Only its own
        loopback, a fresh ``.local`` (tmpfs) under ``cwd``, a fresh shell's environment
        (``SHELL_ENV``), and every process it left running ends with it. ``before`` is shell the
        test runs first in there (what the block assumes, such as "your predictor" on a port)."""
        b = self.block(name)
        _expect(b, {"bash", "sh", "shell"})
        if isolated:
            with tempfile.NamedTemporaryFile("w", suffix=".sh") as script:
                script.write(f"{before}\n{b.code}")
                script.flush()
                ran = _run([*ISOLATED, script.name], env, cwd, timeout, fresh=True)
        else:
            ran = _run(["bash", "-euo", "pipefail", "-c", b.code], env, cwd, timeout)
        if check and ran.returncode != 0:
            raise AssertionError(f"{b.doc}:{b.line} snippet {name!r} failed: {ran}")
        return ran

    def exports(
        self, name: str, env: Mapping[str, str] | None = None, *, cwd: Path | None = None
    ) -> dict[str, str]:
        """Run a shell block as ``bash`` would when pasted, and return the environment it leaves."""
        b = self.block(name)
        _expect(b, {"bash", "sh", "shell"})
        with tempfile.NamedTemporaryFile(suffix=".env") as out:
            script = b.code + f'\nenv -0 > "{out.name}"\n'
            ran = _run(["bash", "-euo", "pipefail", "-c", script], env, cwd, 60)
            if ran.returncode != 0:
                raise AssertionError(f"{b.doc}:{b.line} snippet {name!r} failed: {ran}")
            pairs = Path(out.name).read_bytes().decode().split("\0")
        return dict(p.split("=", 1) for p in pairs if "=" in p)

    def python(
        self,
        name: str,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> Ran:
        """Run a Python block in a subprocess of the workspace's interpreter."""
        b = self.block(name)
        _expect(b, {"python", "py"})
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / f"{name.replace('-', '_')}.py"
            script.write_text(b.code)
            ran = _run([sys.executable, str(script)], env, cwd, timeout)
        if check and ran.returncode != 0:
            raise AssertionError(f"{b.doc}:{b.line} snippet {name!r} failed: {ran}")
        return ran

    def browser(
        self, name: str, driver: Any, consts: Mapping[str, str] | None = None, *, timeout: float = 30
    ) -> list[str]:
        """Run a JavaScript block in the page ``driver`` has open, as a module would (top-level
        ``await``), with ``consts`` declared before it; returns what it logged with console.log.
        An uncaught error fails with the block's logs and the error."""
        b = self.block(name)
        _expect(b, {"javascript", "js"})
        decl = "".join(f"const {k} = {json.dumps(v)};\n" for k, v in (consts or {}).items())
        script = (
            "const __done = arguments[arguments.length - 1]; const __logs = [];\n"
            "const __log = console.log;\n"
            "console.log = (...a) => { __logs.push(a.map(x => typeof x === 'string' ? x : "
            "JSON.stringify(x)).join(' ')); __log(...a); };\n"
            f"(async () => {{\n{decl}{b.code}\n}})().then(() => __done({{logs: __logs}}),"
            " e => __done({logs: __logs, error: String(e && e.stack || e)}));"
        )
        driver.set_script_timeout(timeout)
        result: dict[str, Any] = driver.execute_async_script(script)
        logs = [str(x) for x in result.get("logs", [])]
        if result.get("error"):
            raise AssertionError(f"{b.doc}:{b.line} snippet {name!r} threw {result['error']}\nlogs: {logs}")
        return logs


def claim(doc: str, *names: str, root: Path = REPO) -> Claim:
    """The blocks of ``doc`` this module runs (each must be run by a literal-named runner call)."""
    have = named(doc, root)
    missing = [n for n in names if n not in have]
    if missing:
        raise KeyError(f"{doc} has no block named {', '.join(missing)}")
    return Claim(doc, tuple(names), root)


@dataclass(frozen=True)
class Tie:
    """Blocks exercised by another test that does not read them (for instance ``make up``)."""

    doc: str
    names: tuple[str, ...]
    by: str  # "path/to/test_file.py::test_name", relative to the repository
    why: str = field(default="")


def tie(doc: str, *names: str, by: str, why: str) -> Tie:
    return Tie(doc, tuple(names), by, why)


def _expect(b: Block, langs: set[str]) -> None:
    if b.lang not in langs:
        raise TypeError(f"{b.doc}:{b.line} snippet {b.name!r} is {b.lang or 'untagged'}, not {sorted(langs)}")


# What a newcomer's fresh shell has; an isolated block gets only these (plus what the test gives),
# not whatever this test session exported (MLFLOW_TRACKING_URI of the session's server, ...).
SHELL_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TERM", "TMPDIR", "UV_CACHE_DIR")


def _run(
    cmd: list[str], env: Mapping[str, str] | None, cwd: Path | None, timeout: float, fresh: bool = False
) -> Ran:
    base = {k: v for k, v in os.environ.items() if k in SHELL_ENV} if fresh else dict(os.environ)
    full = {**base, **(env or {})}
    # The workspace's scripts (ferry, ferry-gateway, ...) come first, as after `uv sync` + activate.
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full.get('PATH', '')}"
    p = subprocess.run(
        cmd, env=full, cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Ran(p.returncode, p.stdout, p.stderr)


# ---- the coverage check (pure: reads files, starts nothing) -------------------------------------


@dataclass
class _Module:
    path: str
    claims: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    ties: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)
    runs: set[str] = field(default_factory=set)


def _literal_strs(nodes: list[ast.expr]) -> tuple[str, ...] | None:
    out = []
    for n in nodes:
        if not (isinstance(n, ast.Constant) and isinstance(n.value, str)):
            return None
        out.append(n.value)
    return tuple(out)


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def scan_module(source: str, path: str) -> _Module:
    """Claims, ties and runner calls of one test module, read from its source."""
    mod = _Module(path)
    for node in ast.walk(ast.parse(source, path)):
        if not isinstance(node, ast.Call):
            continue
        name = _callee(node)
        if name in ("claim", "tie"):
            args = _literal_strs(list(node.args))
            if args is None or len(args) < 2:
                continue
            if name == "claim":
                mod.claims.append((args[0], args[1:]))
            else:
                by = next((k.value for k in node.keywords if k.arg == "by"), None)
                if isinstance(by, ast.Constant) and isinstance(by.value, str):
                    mod.ties.append((args[0], args[1:], by.value))
        elif name in RUNNERS and isinstance(node.func, ast.Attribute) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                mod.runs.add(first.value)
    return mod


def suite_files(root: Path = REPO) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in PRUNE and not d.startswith("."))
        if "tests" not in Path(dirpath).relative_to(root).parts:
            continue
        for f in sorted(filenames):
            if f.endswith(".py"):
                yield Path(dirpath) / f


def _test_exists(root: Path, by: str) -> bool:
    file, sep, test = by.partition("::")
    path = root / file
    if not sep or not path.is_file():
        return False
    tree = ast.parse(path.read_text(), file)
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == test for n in ast.walk(tree)
    )


def coverage(root: Path = REPO) -> list[str]:
    """Everything that keeps the docs from being fully executed by tests; empty when all is well."""
    problems: list[str] = []
    docs: dict[str, dict[str, Block]] = {}
    for path in documents(root):
        doc = path.relative_to(root).as_posix()
        docs[doc] = {}
        for b in blocks(doc, root):
            if b.name is None:
                problems.append(f"{doc}:{b.line}: a ```{b.lang} block has no `<!-- snippet: NAME -->` line")
            elif b.name in docs[doc]:
                problems.append(f"{doc}:{b.line}: snippet {b.name!r} is named twice")
            else:
                docs[doc][b.name] = b
    covered: dict[str, set[str]] = {doc: set() for doc in docs}
    for path in suite_files(root):
        rel = path.relative_to(root).as_posix()
        mod = scan_module(path.read_text(), rel)
        for doc, names in mod.claims:
            for n in names:
                if n not in docs.get(doc, {}):
                    problems.append(f"{rel}: claims {doc} snippet {n!r}, which does not exist")
                    continue
                covered[doc].add(n)
                if n not in mod.runs:
                    problems.append(f"{rel}: claims {doc} snippet {n!r} but never runs it by name")
        for doc, names, by in mod.ties:
            if not _test_exists(root, by):
                problems.append(f"{rel}: ties {doc} snippets to {by}, which is not a test function")
            for n in names:
                if n not in docs.get(doc, {}):
                    problems.append(f"{rel}: ties {doc} snippet {n!r}, which does not exist")
                else:
                    covered[doc].add(n)
    for doc, by_name in docs.items():
        for n, b in by_name.items():
            if n not in covered[doc]:
                problems.append(f"{doc}:{b.line}: snippet {n!r} is run by no test (claim it or tie it)")
    return problems
