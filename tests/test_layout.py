"""The house stays easy to walk: no module of runtime/ or packager/ imports itself round a circle.

Every import counts, lazy ones inside functions and type-only ones included:
a circle that only closes at run time is still a circle to the reader.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "packager")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for mod, path in mods.items():
        deps: set[str] = set()
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = ".".join([*package[:len(package) - node.level + 1], *([node.module] if node.module else [])]) \
                    if node.level else (node.module or "")
                for alias in node.names:  # `from pkg import module` imports the module
                    target = owner(f"{base}.{alias.name}") if f"{base}.{alias.name}" in mods else owner(base)
                    if target:
                        deps.add(target)
            elif isinstance(node, ast.Import):
                deps.update(t for a in node.names if (t := owner(a.name)))
        graph[mod] = deps - {mod}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.timeout(30)
def test_no_import_circles():
    circles = _circles(_graph(_modules()))
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


# -- the rules docs/architecture.md states --------------------------------------------------------

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80  # of code: the docstring is not counted


def _sources():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_no_module_is_over_600_lines():
    big = [f"{p.relative_to(ROOT)} ({n} lines)" for p in _sources()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not big, "modules over 600 lines (split them along their concepts): " + ", ".join(big)


def test_no_function_is_over_80_lines_of_code():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                doc = body[0].end_lineno - body[0].lineno + 1 if ast.get_docstring(node) is not None else 0
                n = node.end_lineno - node.lineno + 1 - doc
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions over 80 lines of code (split them into named steps): " + ", ".join(long)


def test_a_backend_knows_no_run():
    graph = _graph(_modules())
    stages = ("runtime.execute", "runtime.schedule", "runtime.output", "runtime.data", "runtime.run", "runtime.cli")
    bad = {m: sorted(d for d in deps if d.startswith(stages)) for m, deps in graph.items()
           if m.startswith("runtime.backends")}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_the_runtime_never_imports_the_packager():
    graph = _graph(_modules())
    bad = {m: sorted(d for d in deps if d.startswith("packager")) for m, deps in graph.items() if m.startswith("runtime")}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_the_packager_uses_only_the_runtimes_public_names():
    """A name the packager imports from the runtime is in that module's __all__ (the runtime may rename the rest)."""
    import importlib

    private = []
    for path in sorted((ROOT / "packager").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("runtime") and not node.level:
                module = importlib.import_module(node.module)
                public = set(getattr(module, "__all__", ()))
                for alias in node.names:
                    if alias.name.startswith("_") or (alias.name not in public and not hasattr(
                            importlib.import_module(node.module), "__path__")):
                        private.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    assert not private, "the packager imports runtime names that are not public: " + ", ".join(private)
