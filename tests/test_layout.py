"""core/ is layered: the engine never imports the runs or the views, and no module imports
another that (directly or not) imports it back. Imports inside functions count too: a lazy
import that breaks a cycle at load time still ties the two modules together."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

CORE = Path(__file__).resolve().parents[1] / "core"

# What each part of core/ may import from core/ (besides itself). The CLI (core.__main__)
# sits on top and may import anything.
ALLOWED = {
    "core.registry": set(),
    "core.data": {"core.registry"},
    "core.engine": {"core.registry", "core.data"},
    "core.runs": {"core.registry", "core.data", "core.engine"},
    "core.viz": {"core.registry", "core.data", "core.engine", "core.runs"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in CORE.rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The core modules a file imports, anywhere in it."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            # "import core.engine.search" names the module; "from core.engine import search"
            # names it through its package
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("core"):
                out.add(name)
    return out


def _graph() -> nx.DiGraph:
    mods = _modules()
    g = nx.DiGraph()
    g.add_nodes_from(mods)
    for name, path in mods.items():
        for target in _imports(path, set(mods)):
            if target != name and target != "core":
                g.add_edge(name, target)
    return g


def _part(module: str) -> str:
    for part in ALLOWED:
        if module == part or module.startswith(part + "."):
            return part
    return module


def test_core_is_in_parts():
    names = set(_modules())
    for part in ("core.engine", "core.data", "core.runs", "core.viz"):
        assert part in names and any(n.startswith(part + ".") for n in names), part
    # what is left at the top: the package, the CLI and the registry every part uses
    assert {n for n in names if n.count(".") == 1 and n not in ALLOWED} <= {"core.__main__"}


def test_no_import_cycles():
    g = _graph()
    cycles = list(nx.simple_cycles(g))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_parts_import_only_the_parts_below_them():
    bad = []
    for src, dst in _graph().edges:
        a, b = _part(src), _part(dst)
        if a in ALLOWED and a != b and b not in ALLOWED[a]:
            bad.append(f"{src} -> {dst}")
    assert not bad, "layering broken: " + ", ".join(sorted(bad))


def test_core_never_imports_streamlit():
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(m.split(".")[0] == "streamlit" for m in mods), name
