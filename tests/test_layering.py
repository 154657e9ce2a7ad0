"""The package's folders are its layers, and imports go one way between them:

    base (errors, limits, version, resources, files, calling)
      <- core (the compiler: text -> tape -> sweeps -> Program)
      <- codegen (Program -> Python, NumPy, C text)      teaching (explain, graph: core only)
      <- verify (proves the core's sweeps and the printed code)
      <- callables (what compile_* return) <- api <- cli

Every import counts, function-level ones included. No module imports another module's underscore
names, no two modules import each other through any chain, and each shared job has one home.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import symdiff

PACKAGE = Path(symdiff.__file__).resolve().parent

BASE = {"errors", "limits", "version", "resources", "files", "calling"}
ALLOWED = {  # layer -> the layers it may import
    "base": {"base"},
    "core": {"base", "core"},
    "codegen": {"base", "core", "codegen"},
    "teaching": {"base", "core", "teaching"},
    "verify": {"base", "core", "codegen"},
    "callables": {"base", "core", "codegen", "verify", "callables"},
    "api": {"base", "core", "codegen", "verify", "callables"},
    "cli": {"base", "core", "codegen", "teaching", "verify", "callables", "api", "cli"},
    "package": {"base", "core", "codegen", "teaching", "verify", "callables", "api"},
}


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in ("templates", "grammars"):
            continue  # package data in a wheel (the NumPy runtime helper is a template), not modules
        parts = ("symdiff", *path.relative_to(PACKAGE).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


MODULES = module_names()


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] in ("core", "codegen", "teaching", "callables"):
        return parts[1]
    if parts[1] in BASE:
        return "base"
    return {"verify": "verify", "api": "api", "cli": "cli", "__main__": "cli"}[parts[1]]


def imports(module: str) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every import in `module`, at any depth."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names if alias.name.startswith("symdiff")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if not source.startswith("symdiff"):
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append(
                    (submodule, "", node.lineno) if submodule in MODULES else (source, alias.name, node.lineno)
                )
    return found


def test_every_module_belongs_to_a_layer():
    assert {layer(module) for module in MODULES} <= set(ALLOWED)
    for folder in ("core", "codegen", "teaching", "callables"):
        assert f"symdiff.{folder}" in MODULES, f"the {folder} layer is a package"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_one_way(module):
    wrong = [
        f"line {line}: {module} ({layer(module)}) imports {target} ({layer(target)})"
        for target, _, line in imports(module)
        if layer(target) not in ALLOWED[layer(module)]
    ]
    assert wrong == []


def test_no_module_imports_another_modules_underscore_names():
    private = [
        f"{module} line {line}: {name} from {source}"
        for module in MODULES
        for source, name, line in imports(module)
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
    ]
    assert private == []


def test_there_are_no_import_cycles():
    graph = {module: {target for target, _, _ in imports(module) if target in MODULES} for module in MODULES}
    # A submodule's import runs its package's __init__ first; that edge is not a cycle of the code.
    graph = {module: {t for t in targets if not module.startswith(t + ".")} for module, targets in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, chain: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*chain[chain.index(target) :], target]))
            elif target not in state:
                visit(target, [*chain, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def calls(path: Path) -> set[str]:
    """The dotted names a module calls (`exec`, `jinja2.Environment`, `os.replace`, ...)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            names.add(ast.unparse(node.func))
    return names


@pytest.mark.parametrize(
    ("job", "pattern", "home"),
    [
        ("the Jinja environment", r"^jinja2\.Environment$", "symdiff.resources"),
        ("executing generated code", r"^(exec|eval)$", "symdiff.calling"),
        ("atomic replacement of a file", r"^os\.(replace|rename)$", "symdiff.files"),
    ],
)
def test_each_shared_job_has_one_home(job, pattern, home):
    homes = sorted(module for module, path in MODULES.items() if any(re.match(pattern, name) for name in calls(path)))
    assert homes == [home], f"{job} happens in {homes}"


def test_argument_binding_has_one_home():
    # Every callable binds positional and keyword arguments with calling.bind, and nothing else does.
    binders = sorted(module for module, path in MODULES.items() if "kwargs.items()" in path.read_text(encoding="utf-8"))
    assert binders == ["symdiff.calling"]
