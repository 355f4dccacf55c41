"""The package's shape, read from its source with ``ast`` (nothing is imported):

* no import cycles among kanarray modules (imports inside functions and under TYPE_CHECKING
  count: they are dependencies all the same);
* only kanarray/model.py touches a model's private members;
* class KAN stays at most 300 lines, and a module over 600 lines says why in its docstring
  (a docstring line starting with "Length:").

Each failure lists every offender, with file and line."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

PACKAGE = "kanarray"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE

KAN_MAX_LINES = 300
MODULE_MAX_LINES = 600
LENGTH_REASON = "Length:"
# receivers that are (by the package's naming) a model: <name>._private is a reach into it
MODEL_NAMES = frozenset({"model", "new", "old", "kan", "other", "like", "KAN"})


# -- reading the package -----------------------------------------------------------------------


def module_name(path: Path, root: Path, package: str = PACKAGE) -> str:
    """kanarray/x/y.py -> kanarray.x.y; a package's __init__.py is the package's own node."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def read_modules(root: Path = SOURCE, package: str = PACKAGE) -> dict:
    """module name -> (path, source text, ast.Module) for every .py file under root."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        modules[module_name(path, root, package)] = (path, text, ast.parse(text, filename=str(path)))
    return modules


def _is_package(name: str, modules: dict) -> bool:
    return modules[name][0].name == "__init__.py"


def _type_checking_lines(tree: ast.Module) -> set:
    """Line numbers of the imports under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for inner in node.body:
                    for sub in ast.walk(inner):
                        if isinstance(sub, (ast.Import, ast.ImportFrom)):
                            lines.add(sub.lineno)
    return lines


def _function_lines(tree: ast.Module) -> set:
    """Line numbers of the imports inside a function (run when it is called)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    lines.add(sub.lineno)
    return lines


def import_edges(modules: dict, package: str = PACKAGE) -> list:
    """Every import of one package module by another: (importer, imported, line, note).

    ``import a.b.c`` depends on a.b.c; ``from a.b import c`` on a.b.c where that is a module,
    else on a.b (c is a name defined there); relative imports are resolved against the
    importer's package (a package's __init__ is its own package).  Only the named module
    counts, not the parent packages Python also runs on the way (every module would then
    depend on kanarray/__init__.py)."""
    edges = []
    for name, (_, _, tree) in modules.items():
        checking, in_function = _type_checking_lines(tree), _function_lines(tree)
        own_package = name if _is_package(name, modules) else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = importlib.util.resolve_name("." * node.level + base, own_package)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if alias.name != "*" and sub in modules else base)
            else:
                continue
            note = ("TYPE_CHECKING" if node.lineno in checking else "in a function" if node.lineno in in_function
                    else "")
            for target in targets:
                if target in modules and target != name:
                    edges.append((name, target, node.lineno, note))
                elif target != name and (target == package or target.startswith(package + ".")):
                    # kanarray.x.y.z where only kanarray.x.y is a module (z a name): the longest module
                    parts = target.split(".")
                    while parts and ".".join(parts) not in modules:
                        parts.pop()
                    owner = ".".join(parts)
                    if owner and owner != name:
                        edges.append((name, owner, node.lineno, note))
    return edges


def strongly_connected(nodes, edges) -> list:
    """Tarjan's strongly connected components (iterative) of the graph: lists of nodes."""
    succ = {n: [] for n in nodes}
    for a, b, *_ in edges:
        if b not in succ[a]:
            succ[a].append(b)
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return out


def shortest_cycle(component, edges) -> list:
    """A shortest cycle through the component's first node (breadth first, inside it)."""
    inside = set(component)
    succ = {}
    for a, b, *_ in edges:
        if a in inside and b in inside:
            succ.setdefault(a, []).append(b)
    start = component[0]
    parent, frontier = {start: None}, [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(set(succ.get(node, []))):
                if nxt == start:
                    path = [node]  # back to start through the parents
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if nxt not in parent:
                    parent[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start]


def import_cycles(modules: dict, package: str = PACKAGE, root: Path = SOURCE) -> list:
    """One message per import cycle (strongly connected component of two or more modules):
    the modules, one shortest cycle, and every import inside the component."""
    edges = import_edges(modules, package)
    messages = []
    for component in strongly_connected(list(modules), edges):
        if len(component) < 2:
            continue
        inside = set(component)
        cycle = shortest_cycle(component, edges)
        lines = [f"cycle among {len(component)} modules: {', '.join(component)}",
                 f"  e.g. {' -> '.join(cycle)}", "  imports inside it:"]
        for a, b, line, note in sorted(set(edges)):
            if a in inside and b in inside:
                lines.append(f"    {_where(modules[a][0], root)}:{line}: {a} -> {b}" + (f" ({note})" if note else ""))
        messages.append("\n".join(lines))
    return messages


def _is_private(attr: str) -> bool:
    return attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))


def kan_class(modules: dict, package: str = PACKAGE):
    """The ``class KAN`` node of kanarray/model.py, or None."""
    entry = modules.get(f"{package}.model")
    if entry is None:
        return None
    return next((node for node in entry[2].body if isinstance(node, ast.ClassDef) and node.name == "KAN"), None)


def kan_private_members(cls: ast.ClassDef) -> set:
    """KAN's private members: its private methods and class attributes, and every private
    attribute assigned in its body (``self._x = ...``, tuple targets included)."""
    members = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_private(node.name):
            members.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name) and _is_private(sub.id):
                        members.add(sub.id)
    for node in ast.walk(cls):
        targets = (node.targets if isinstance(node, ast.Assign) else [node.target]
                   if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute) and _is_private(sub.attr):
                    members.add(sub.attr)
    return members


def _own_self_accesses(tree: ast.Module) -> set:
    """ids of the ``self._x`` / ``cls._x`` nodes inside methods of classes defined in this
    module: a class's own members, whatever they are called."""
    own = set()
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        for method in cls.body:
            if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) or not method.args.args:
                continue
            first = method.args.args[0].arg
            if first not in ("self", "cls"):
                continue
            for sub in ast.walk(method):
                if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == first:
                    own.add(id(sub))
    return own


def _model_receiver(value: ast.expr) -> str | None:
    """'model' for ``model``, 'type(model)' for ``type(model)``, where the name is a model's."""
    if isinstance(value, ast.Name) and value.id in MODEL_NAMES:
        return value.id
    if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "type"
            and len(value.args) == 1 and isinstance(value.args[0], ast.Name) and value.args[0].id in MODEL_NAMES):
        return f"type({value.args[0].id})"
    return None


def private_reaches(modules: dict, private: set, package: str = PACKAGE) -> list:
    """(path, line, text) of every ``<expr>._name`` outside kanarray/model.py where <expr> is a
    model's name (MODEL_NAMES, ``type(<one of them>)``) or ``_name`` is one of KAN's private
    members (``private``), except a class's own ``self._name`` inside its methods."""
    found = []
    for name, (path, _, tree) in modules.items():
        if name == f"{package}.model":
            continue
        own = _own_self_accesses(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
                continue
            receiver = _model_receiver(node.value)
            if receiver is not None:
                why = f"a model's private member ({receiver})"
            elif node.attr in private and id(node) not in own:
                why = "KAN's private member"
            else:
                continue
            found.append((path, node.lineno, f"{ast.unparse(node)}: {why}"))
    return sorted(found, key=lambda f: (str(f[0]), f[1], f[2]))


def _where(path: Path, root: Path = SOURCE) -> str:
    """The path as the repository names it (kanarray/x.py)."""
    return str(path.relative_to(root.parent)) if path.is_relative_to(root.parent) else str(path)


def long_modules(modules: dict) -> list:
    """(path, lines) of the modules over MODULE_MAX_LINES lines whose docstring has no line
    starting with "Length:" followed by a reason."""
    out = []
    for path, text, tree in modules.values():
        n = len(text.splitlines())
        if n <= MODULE_MAX_LINES:
            continue
        doc = ast.get_docstring(tree) or ""
        reasons = [line.strip()[len(LENGTH_REASON):].strip() for line in doc.splitlines()
                   if line.strip().startswith(LENGTH_REASON)]
        if not any(reasons):
            out.append((path, n))
    return sorted(out)


# -- the checks --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def modules():
    return read_modules()


def test_the_package_is_read(modules):
    assert f"{PACKAGE}" in modules and f"{PACKAGE}.model" in modules and len(modules) > 10
    assert import_edges(modules), "no imports found among the package's modules"


def test_no_import_cycles_among_kanarray_modules(modules):
    cycles = import_cycles(modules)
    assert not cycles, f"{len(cycles)} import cycle(s) among kanarray modules:\n" + "\n".join(cycles)


def test_only_model_py_uses_a_models_private_members(modules):
    cls = kan_class(modules)
    assert cls is not None, "no class KAN in kanarray/model.py"
    found = private_reaches(modules, kan_private_members(cls))
    assert not found, (f"{len(found)} use(s) of a model's private members outside kanarray/model.py "
                       f"(KAN's private members: {', '.join(sorted(kan_private_members(cls)))}):\n"
                       + "\n".join(f"  {_where(path)}:{line}: {text}" for path, line, text in found))


def test_class_kan_is_at_most_300_lines(modules):
    cls = kan_class(modules)
    assert cls is not None, "no class KAN in kanarray/model.py"
    first = min([cls.lineno, *(d.lineno for d in cls.decorator_list)])
    n = cls.end_lineno - first + 1
    assert n <= KAN_MAX_LINES, (f"class KAN in kanarray/model.py is {n} lines (lines {first}-{cls.end_lineno}), "
                                f"more than {KAN_MAX_LINES}")


def test_modules_over_600_lines_say_why(modules):
    found = long_modules(modules)
    assert not found, (f"{len(found)} module(s) over {MODULE_MAX_LINES} lines without a docstring line "
                       f"'{LENGTH_REASON} <why>':\n" + "\n".join(f"  {_where(path)}: {n} lines" for path, n in found))


# -- the checker itself, on a made-up package ---------------------------------------------------


def _fake_package(tmp_path, files: dict) -> dict:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return read_modules(root, "pkg")


def test_checker_resolves_imports_and_finds_cycles(tmp_path):
    modules = _fake_package(tmp_path, {
        "__init__.py": "from .a import f\n",
        "a.py": "import pkg.sub.c\n\ndef f():\n    from . import b\n",
        "b.py": "from .sub import c\nfrom .sub.c import name\n",
        "sub/__init__.py": "from .. import b\n",
        "sub/c.py": "from ..a import f\nfrom pkg.sub import helper\nimport os\n",
    })
    edges = {(a, b, note) for a, b, _, note in import_edges(modules, "pkg")}
    assert edges == {("pkg", "pkg.a", ""), ("pkg.a", "pkg.sub.c", ""), ("pkg.a", "pkg.b", "in a function"),
                     ("pkg.b", "pkg.sub.c", ""), ("pkg.sub", "pkg.b", ""), ("pkg.sub.c", "pkg.a", ""),
                     ("pkg.sub.c", "pkg.sub", "")}
    components = [c for c in strongly_connected(list(modules), import_edges(modules, "pkg")) if len(c) > 1]
    assert components == [["pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"]]
    (message,) = import_cycles(modules, "pkg", tmp_path / "pkg")
    assert "e.g. pkg.a -> pkg.sub.c -> pkg.a" in message and "pkg/sub/__init__.py:1: pkg.sub -> pkg.b" in message


def test_checker_finds_private_reaches_and_long_modules(tmp_path):
    model = ("class KAN:\n    _cache = None\n\n    def __init__(self):\n        self._state, self.width = 1, 2\n\n"
             "    def _helper(self):\n        return self._state\n")
    modules = _fake_package(tmp_path, {
        "model.py": model,
        "user.py": ("def f(model, m):\n    model._anything\n    type(model)._x\n    m._helper()\n    m.__dict__\n"
                    "    m._unrelated\n\nclass Other:\n    def g(self):\n        return self._state\n\n"
                    "def h(self):\n    return self._state\n"),
        "big.py": '"""Long.\n\nLength: one table of every case, kept together."""\n' + "x = 1\n" * 700,
        "bigger.py": '"""Long.\n\nLength:\n"""\n' + "x = 1\n" * 700,
    })
    cls = kan_class(modules, "pkg")
    assert kan_private_members(cls) == {"_cache", "_state", "_helper"}
    found = [(line, text) for _, line, text in private_reaches(modules, kan_private_members(cls), "pkg")]
    assert found == [(2, "model._anything: a model's private member (model)"),
                     (3, "type(model)._x: a model's private member (type(model))"),
                     (4, "m._helper: KAN's private member"), (13, "self._state: KAN's private member")]
    assert [(p.name, n) for p, n in long_modules(modules)] == [("bigger.py", 704)]
