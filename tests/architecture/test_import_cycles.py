"""No import cycle between the project's modules, not even inside one package.

import-linter's layers contract stops upward imports between packages; it says nothing
about two modules of one package importing each other. Such a cycle is what makes a
module impossible to move or test alone, and it is usually hidden behind an import
inside a function, so imports inside functions count here too. Imports under
``if TYPE_CHECKING:`` do not: they never run.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]

# Top-level packages the issue #23 moves create; checked as soon as they exist, before
# the import-linter contract lists them.
EXPECTED_PACKAGES = ("config", "chat", "search")


def project_packages() -> list[str]:
    """The contract's root packages and the expected ones, those that exist.

    A package the contract names but that is gone is lint-imports' failure to report.
    """
    with (ROOT / "pyproject.toml").open("rb") as config:
        roots = tomllib.load(config)["tool"]["importlinter"]["root_packages"]
    names = dict.fromkeys([*roots, *EXPECTED_PACKAGES])
    return [name for name in names if (ROOT / name / "__init__.py").is_file()]


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted.

    Tarjan's algorithm, iterative so that a long import chain cannot hit the recursion
    limit.
    """
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    edges = {
        module: sorted(graph.find_modules_directly_imported_by(module)) for module in graph.modules
    }

    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = lowlink[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, targets = work[-1]
            advanced = False
            for target in targets:
                if target not in index:
                    index[target] = lowlink[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges[target])))
                    advanced = True
                    break
                if target in on_stack:
                    lowlink[module] = min(lowlink[module], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[module])
            if lowlink[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def describe(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One cycle of ``component`` as ``a -> b -> a``, with the line of each import."""
    first, members = component[0], set(component)
    lines = []
    # The shortest way back to ``first`` through one of the modules it imports.
    best: tuple[str, ...] | None = None
    for target in graph.find_modules_directly_imported_by(first) & members:
        back = graph.find_shortest_chain(importer=target, imported=first)
        if back is not None and (best is None or len(back) < len(best)):
            best = back
    chain = (first, *best) if best else tuple(component)
    for importer, imported in itertools.pairwise(chain):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = ", ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)
        lines.append(f"    {importer} -> {imported}  ({where})")
    return f"  {', '.join(component)}\n" + "\n".join(lines)


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph(
        *project_packages(), exclude_type_checking_imports=True, cache_dir=None
    )
    cycles = import_cycles(graph)
    assert not cycles, (
        f"{len(cycles)} import cycle(s) between project modules; make one side depend on "
        "the other only (move the shared part down, or into the module that needs it):\n"
        + "\n".join(describe(graph, component) for component in cycles)
    )


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function():
    # A graph the size of the project's passes only because the finder works: check it
    # on a known cycle (a lazy import, as base.py's once was) and a known non-cycle.
    graph = grimp.ImportGraph()
    for module in ("p.a", "p.b", "p.c", "p.d"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b", line_number=1, line_contents="import p.b")
    graph.add_import(importer="p.b", imported="p.c", line_number=1, line_contents="import p.c")
    graph.add_import(importer="p.c", imported="p.a", line_number=9, line_contents="import p.a")
    graph.add_import(importer="p.d", imported="p.a", line_number=1, line_contents="import p.a")
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"]]
    assert "p.c -> p.a  (line 9: import p.a)" in describe(graph, ["p.a", "p.b", "p.c"])
