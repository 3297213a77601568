"""The layout's promises, read from the source: the engine knows no GUI, trainer or lab; no
import cycles; no module imports another module's private names; benches need no path edits."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "trainer", "app", "recipes", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str]]:
    """(imported module, imported name or "") for every import in the file, lazy ones included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for a in node.names:
                sub = f"{source}.{a.name}"
                out.append((sub, "") if sub in known else (source, a.name))
    return out


def graph() -> tuple[dict[str, set[str]], list[str]]:
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    private = []
    for name, path in known.items():
        for source, imported in imports(name, path, known):
            if source in known and source != name:
                edges[name].add(source)
                if imported.startswith("_") and not imported.startswith("__"):
                    private.append(f"{name} imports {source}.{imported}")
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
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
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_engine_imports_no_gui_trainer_or_lab():
    edges, _ = graph()
    wrong = [f"{a} -> {b}" for a, deps in edges.items() if a.startswith("engine")
             for b in deps if b.split(".")[0] in ("app", "trainer", "recipes", "bench")]
    assert wrong == []


def test_trainer_does_not_import_the_app_or_the_lab():
    edges, _ = graph()
    wrong = [f"{a} -> {b}" for a, deps in edges.items() if a.startswith("trainer")
             for b in deps if b.split(".")[0] in ("app", "recipes", "bench")]
    assert wrong == []


def test_no_import_cycles():
    edges, _ = graph()
    assert cycles(edges) == []


def test_no_module_imports_a_private_name_of_another():
    _, private = graph()
    assert private == []


def test_benches_run_as_modules_without_path_edits():
    offenders = [p.name for p in (ROOT / "bench").glob("*.py") if "sys.path" in p.read_text(encoding="utf-8")]
    assert (ROOT / "bench" / "__init__.py").is_file()
    assert offenders == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
