"""No import circles between customkeras's subpackages (issue 22.6).

The package's modules are read with `ast` (nothing is imported), including the imports
inside functions: a deferred import still ties two rooms together, it only hides the
circle from Python's import system. Each import becomes an edge from the importing module
to the customkeras module it names; a subpackage (`customkeras.cli`, `customkeras.tracing`,
...) or top-level module (`customkeras.experiments`) is one node of the room graph, and
that graph must have no cycle: e.g. `customkeras.tracing` -> `customkeras.cli` ->
`customkeras.tracing` is refused. The package's own `__init__` (the facade that imports
every part) is no node. Importing `a.b.c` also runs `a/b/__init__.py` first; that implicit
edge is not counted (a package whose `__init__` re-exports its modules would otherwise
always be a circle), but an explicit `from a.b import name` of the `__init__`'s own name is.
"""

import ast
import pathlib

import pytest

PACKAGE = "customkeras"
ROOT = pathlib.Path(__file__).resolve().parents[1] / "src" / PACKAGE


def module_names():
    """`{dotted module name: path}` for every module of the package."""
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _absolute(module, node, is_package):
    """The absolute module an `ImportFrom` names (relative imports resolved)."""
    if not node.level:
        return node.module
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module, path, modules):
    """The customkeras modules `module` imports, anywhere in its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node, is_package)
            # `from a.b import c` imports the module a.b.c when there is one, else a.b.
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules
                       else source for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t == PACKAGE or t.startswith(PACKAGE + "."))
    found.discard(module)
    return found


def module_graph():
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def room(module):
    """The subpackage or top-level module `module` belongs to (None: the facade)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else None


def room_graph(graph):
    rooms = {}
    for module, targets in graph.items():
        source = room(module)
        if source is None:
            continue
        edges = rooms.setdefault(source, {})
        for target in targets:
            target_room = room(target)
            if target_room not in (None, source):
                edges.setdefault(target_room, []).append((module, target))
    return rooms


def cycles(graph):
    """The strongly connected components of more than one node (Tarjan), sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _explain(rooms, component):
    """Which imports tie the rooms of a cycle together, for the failure message."""
    lines = []
    for source in component:
        for target in component:
            for module, imported in rooms.get(source, {}).get(target, ())[:3]:
                lines.append(f"  {source} -> {target}: {module} imports {imported}")
    return "\n".join(lines)


def test_the_subpackages_import_each_other_without_a_cycle():
    rooms = room_graph(module_graph())
    found = cycles(rooms)
    assert not found, "import cycles between subpackages:\n" + "\n\n".join(
        _explain(rooms, component) for component in found)


def test_tracing_never_imports_the_cli():
    imports = room_graph(module_graph()).get("customkeras.tracing", {})
    assert "customkeras.cli" not in imports, imports.get("customkeras.cli")


# The engine (`customkeras.training`) is being redesigned (issue 22): circles between its
# own modules are that work's to remove; this test lists none of them.
REDESIGNED = "customkeras.training"


def test_no_module_imports_itself_back_outside_the_engine():
    graph = {module: {t for t in targets if t != PACKAGE}  # the facade imports everything
             for module, targets in module_graph().items() if module != PACKAGE}
    found = [component for component in cycles(graph)
             if not all(m == REDESIGNED or m.startswith(REDESIGNED + ".") for m in component)]
    assert not found, f"module import cycles: {found}"


@pytest.mark.parametrize("source, expected", [
    # A function-level import, a relative one and a `from package import module` are seen.
    ("def f():\n    from customkeras.cli import trace\n", {"customkeras.cli.trace"}),
    ("from . import counting\n", {"customkeras.tracing.counting"}),
    ("from .counting import count_traces\n", {"customkeras.tracing.counting"}),
    ("import customkeras.datasets.tfrecords as t\n", {"customkeras.datasets.tfrecords"}),
    ("from customkeras import _checks, experiments\n",
     {"customkeras._checks", "customkeras.experiments"}),
])
def test_the_graph_sees_every_kind_of_import(tmp_path, source, expected):
    path = tmp_path / "command.py"
    path.write_text(source)
    assert imports_of("customkeras.tracing.command", path, module_names()) == expected


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
