"""The layout the design promises, checked from the source with ``ast`` (nothing is imported):

* no import cycle among scalefit's modules (lazy imports inside functions count: they are dependencies);
* no module outside ``cli/`` imports typer or rich (the library has no terminal);
* no ``cli/`` module imports a private name (``_x``) from the library;
* one atomic writer and one interval module: ``os.replace`` only in ``_io.py``, percentiles only in
  ``stats.py``;
* no module over 500 lines;
* one validation voice: no error message outside ``cli/`` names a command-line flag (``--tokens``); the
  library names its Python parameters and the CLI boundary maps them to flags.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "scalefit"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import outside TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(sub) for sub in ast.walk(node))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                target = node.module or ""
            names = [alias.name for alias in node.names]
            submodules = [n for n in names if f"{target}.{n}" in MODULES]
            for sub in submodules:
                out.append((f"{target}.{sub}", [], node.lineno))
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                out.append((target, rest, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for target, _, _ in _imports(name, path):
            # A module's own package (its __init__ runs first anyway) is not a dependency edge.
            if target in MODULES and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    graph = _graph()
    cycles = _cycles(graph)
    detail = [{m: sorted(graph[m] & set(c)) for m in c} for c in cycles]
    assert not cycles, detail


def test_the_library_has_no_terminal():
    offenders = [f"{name}:{line} imports {target}" for name, path in MODULES.items() if not name.startswith("scalefit.cli")
                 for target, _, line in _imports(name, path) if target.split(".")[0] in ("typer", "rich")]
    assert not offenders, offenders


def test_the_cli_uses_only_public_library_names():
    offenders = [f"{name}:{line} imports {target}.{n}" for name, path in MODULES.items() if name.startswith("scalefit.cli")
                 for target, names, line in _imports(name, path)
                 if target.startswith("scalefit") and not target.startswith("scalefit.cli")
                 for n in names if n.startswith("_") and n != "__version__"]
    assert not offenders, offenders


def _calls(attr_names: set[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in attr_names and isinstance(node.value, ast.Name):
                if f"{node.value.id}.{node.attr}" in {"os.replace", "np.percentile", "np.nanpercentile"}:
                    found.setdefault(name, []).append(node.lineno)
    return found


def test_one_atomic_writer_and_one_interval_module():
    replace = {m for m in _calls({"replace"})}
    assert replace <= {"scalefit._io"}, replace
    percentile = {m for m in _calls({"percentile", "nanpercentile"})}
    assert percentile <= {"scalefit.stats"}, percentile


def test_no_module_grows_past_its_job():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these by job: {long}"


ERROR_CLASSES = {"ScalefitError", "DataError", "FitError", "LawDefinitionError", "LawNotFoundError", "CheckFailed",
                 "LimitError", "option_error"}
# Modules whose messages still name flags while someone else edits them: converted with the curve-interval work.
FLAG_MESSAGES_PENDING: set[str] = set()
_FLAG = re.compile(r"--[A-Za-z{]")  # ``--tokens``, or ``--{name}`` built in an f-string


def _flag_messages(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal (f-strings included) in the arguments of a call to an error
    class or to ``option_error`` that names a flag."""
    source = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if func not in ERROR_CLASSES:
            continue
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            inner = {id(c) for f in ast.walk(arg) if isinstance(f, ast.JoinedStr) for c in ast.walk(f) if c is not f}
            for sub in ast.walk(arg):
                literal = isinstance(sub, ast.JoinedStr) or (isinstance(sub, ast.Constant) and isinstance(sub.value, str))
                if literal and id(sub) not in inner:
                    text = ast.get_source_segment(source, sub) or ""
                    if _FLAG.search(text):
                        found.append((sub.lineno, text))
    return found


def test_library_errors_name_parameters_not_flags():
    offenders = [f"{name}:{line}: {text}" for name, path in MODULES.items()
                 if not name.startswith("scalefit.cli") and name not in FLAG_MESSAGES_PENDING
                 for line, text in _flag_messages(path)]
    assert not offenders, "name the Python parameter and pass options=(...):\n" + "\n".join(offenders)


def test_the_flag_check_sees_what_it_should():
    """The checker itself: it finds flags in plain and f-string messages, nested or keyword-passed."""
    import tempfile

    code = (
        'raise DataError(f"--tokens {x}: bad")\n'
        'raise errors.FitError("give " + ("--set" if a else "x"))\n'
        'raise option_error("p", v, rule=f"use --{name}")\n'
        'raise DataError("tokens=1: fine, 1--2 is not a flag", options=("tokens",))\n'
    )
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(code)
    try:
        assert [line for line, _ in _flag_messages(Path(fh.name))] == [1, 2, 3]
    finally:
        Path(fh.name).unlink()
