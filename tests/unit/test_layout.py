"""The import structure: arrows point down, roles side by side, no cycles.

    wharf (the command, the demo)      may import every package below
    links                              a party of one exchange and a buyer of another: parties, buyers
    gateway · parties · buyers         roles: each imports only itself, the kernel and protocols
    datawharf (kernel)                 imports only itself and protocols
    protocols (pure crypto)            imports only itself

Every import counts, including those inside functions. Run it as a script
to print the graph's violations for any checkout:

    python -m tests.unit.test_layout [ROOT]
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocols", "datawharf", "gateway", "parties", "buyers", "links", "wharf")
ALLOWED: dict[str, set[str]] = {
    "protocols": {"protocols"},
    "datawharf": {"datawharf", "protocols"},
    "gateway": {"gateway", "datawharf", "protocols"},
    "parties": {"parties", "datawharf", "protocols"},
    "buyers": {"buyers", "datawharf", "protocols"},
    # A link between exchanges is a party of one and a buyer of the other.
    "links": {"links", "buyers", "parties", "datawharf", "protocols"},
    "wharf": set(PACKAGES),
}
GENERATED = "datawharf/v1/"


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")) if (root / pkg).is_dir() else []:
            rel = path.relative_to(root).as_posix()
            if rel.startswith(GENERATED):
                continue
            name = rel[:-3].replace("/", ".").removesuffix(".__init__")
            out[name] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports (the longest known prefix of each)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")
                parent = parts if is_pkg else parts[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            # ``from pkg import mod`` is an import of pkg.mod; ``from pkg import name`` one of pkg itself.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    mods = modules(root)
    known = set(mods)
    return {name: imports(name, path, known) for name, path in mods.items()}


def upward(g: dict[str, set[str]]) -> list[str]:
    out = []
    for src, dsts in sorted(g.items()):
        top = src.split(".")[0]
        for dst in sorted(dsts):
            if dst.split(".")[0] not in ALLOWED[top]:
                out.append(f"{src} imports {dst}")
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
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
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def package_cycles(g: dict[str, set[str]]) -> list[list[str]]:
    top: dict[str, set[str]] = defaultdict(set)
    for src, dsts in g.items():
        for dst in dsts:
            a, b = src.split(".")[0], dst.split(".")[0]
            if a != b:
                top[a].add(b)
    return cycles(dict(top))


def test_no_upward_or_sideways_imports() -> None:
    bad = upward(graph(ROOT))
    assert not bad, "imports that run against the layout:\n  " + "\n  ".join(bad)


def test_no_import_cycles_between_modules_or_packages() -> None:
    g = graph(ROOT)
    assert not cycles(g), f"modules importing each other: {cycles(g)}"
    assert not package_cycles(g), f"packages importing each other: {package_cycles(g)}"


def test_the_checker_sees_violations() -> None:
    g = {"protocols.a": {"gateway.b"}, "gateway.b": {"gateway.c"}, "gateway.c": {"gateway.b", "protocols.a"},
         "datawharf.x": {"protocols.a"}}
    assert upward(g) == ["protocols.a imports gateway.b"]
    assert cycles(g) == [["gateway.b", "gateway.c", "protocols.a"]]
    assert package_cycles(g) == [["gateway", "protocols"]]


def test_relative_and_function_level_imports_count(tmp_path: Path) -> None:
    pkg = tmp_path / "parties"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from gateway import b\n    from . import c\n")
    (pkg / "c.py").write_text("")
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "__init__.py").write_text("")
    (tmp_path / "gateway" / "b.py").write_text("")
    g = graph(tmp_path)
    assert g["parties.a"] == {"gateway.b", "parties.c"}
    assert upward(g) == ["parties.a imports gateway.b"]


if __name__ == "__main__":
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT
    g = graph(root)
    edges = sum(len(v) for v in g.values())
    print(f"{root}: {len(g)} modules, {edges} imports between them")
    bad = upward(g)
    print(f"{len(bad)} import(s) against the layout")
    for line in bad:
        print("  " + line)
    for comp in cycles(g):
        print("module cycle: " + " <-> ".join(comp))
    for comp in package_cycles(g):
        print("package cycle: " + " <-> ".join(comp))
    sys.exit(1 if bad or cycles(g) or package_cycles(g) else 0)
