"""Code versions for the workflow: a short hash of the source that defines a job's behaviour.

Each training job's ``params:`` carry ``code=job_version(family, method)``, so Snakemake's params
trigger reruns exactly the jobs whose code changed:

* the **method**: the class named by ``METHODS[method].cls`` with its in-module base classes, plus
  the module-level code of that module outside any class (helpers every class there may use);
  editing the RigL class changes only the RigL methods' version;
* the **family**: the family's module (or package) named in ``tasks.FAMILIES`` and the smcbench
  modules it imports, statically, excluding the engine and the method modules;
* the **shared loop**: ``train.py`` and ``checkpoint.py`` and the smcbench modules they import
  statically (the sparsity core, the shared task base), excluding method and family modules, which
  are versioned above.

Everything is derived from the registries and the import statements (``ast``, nothing imported),
so a new method or family is versioned without a hand-kept list. Torch-free: the Snakefile calls it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = "smcbench"
LOOP_MODULES = ("smcbench.train", "smcbench.checkpoint")
SHORT = 12


def _digest(parts) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        h.update(name.encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:SHORT]


def module_file(module: str) -> Path | None:
    """The source file of ``smcbench.x.y`` (module or package ``__init__``), without importing it."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    rel = module.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*rel)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@functools.lru_cache(maxsize=None)
def _lines(path: Path) -> tuple[str, ...]:
    return tuple(path.read_text(encoding="utf-8").splitlines())


def _segment(path: Path, node: ast.AST) -> str:
    """The source lines of a top-level statement (``ast.get_source_segment`` re-splits the whole
    file on every call: too slow for planning)."""
    return "\n".join(_lines(path)[node.lineno - 1:node.end_lineno])


@functools.lru_cache(maxsize=None)
def direct_imports(module: str) -> tuple[str, ...]:
    """smcbench modules that ``module`` imports anywhere in its source (also inside functions)."""
    path = module_file(module)
    if path is None:
        return ()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return tuple(sorted(m for m in found if module_file(m) is not None))


def closure(roots, exclude=frozenset()) -> list[str]:
    """Modules reachable from ``roots`` through static imports (plus their parent packages),
    not entering modules in ``exclude``."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        m = todo.pop()
        if m in seen or m in exclude or module_file(m) is None:
            continue
        seen.add(m)
        todo.extend(p for p in _parents(m) if p != PACKAGE)
        todo.extend(direct_imports(m))
    return sorted(seen)


def _files_version(modules) -> str:
    parts = []
    for m in sorted(set(modules)):
        path = module_file(m)
        parts.append((str(path.relative_to(PACKAGE_DIR)), path.read_bytes()))
    return _digest(parts)


def _family_modules() -> dict[str, str]:
    from .tasks import FAMILIES

    return dict(FAMILIES)


def _method_classes() -> dict[str, str]:
    from .sparsity.registry import METHODS

    return {name: info.cls for name, info in METHODS.items()}


@functools.lru_cache(maxsize=None)
def _engine_modules() -> frozenset[str]:
    """Modules versioned on their own: every method's module and every family's module/package."""
    own = {cls.split(":")[0] for cls in _method_classes().values()}
    for module in _family_modules().values():
        own.add(module)
        path = module_file(module)
        if path is not None and path.name == "__init__.py":
            own.update(_package_modules(module))
    return frozenset(own)


def _package_modules(package: str) -> list[str]:
    root = module_file(package).parent
    return [package + "." + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            for p in sorted(root.rglob("*.py"))]


@functools.lru_cache(maxsize=None)
def loop_version() -> str:
    """The shared training loop, checkpointing and everything they import (method and family
    modules excluded)."""
    return _files_version(closure(LOOP_MODULES, exclude=_engine_modules() - set(LOOP_MODULES)))


@functools.lru_cache(maxsize=None)
def family_version(family: str) -> str:
    """The family's module or package and the smcbench modules it imports (methods and the loop
    excluded)."""
    modules = _family_modules()
    if family not in modules:
        raise ValueError(f"unknown task family {family!r} (known: {', '.join(modules)})")
    root = modules[family]
    roots = [root]
    path = module_file(root)
    if path is not None and path.name == "__init__.py":
        roots += _package_modules(root)
    others = {m for f, m in modules.items() if f != family}
    exclude = ({cls.split(":")[0] for cls in _method_classes().values()} | set(LOOP_MODULES) | others)
    return _files_version(closure(roots, exclude=frozenset(exclude)))


def _class_segments(path: Path, name: str, seen: set[str]) -> list[str]:
    """Source of class ``name`` and of its base classes defined in the same module."""
    classes = {n.name: n for n in _tree(path).body if isinstance(n, ast.ClassDef)}
    if name in seen or name not in classes:
        return []
    seen.add(name)
    node = classes[name]
    out = [_segment(path, node)]
    for base in node.bases:
        if isinstance(base, ast.Name):
            out += _class_segments(path, base.id, seen)
    return out


@functools.lru_cache(maxsize=None)
def method_version(method: str) -> str:
    """The method's class (with in-module bases) plus its module's code outside classes."""
    classes = _method_classes()
    if method not in classes:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(classes)})")
    module, _, cls = classes[method].partition(":")
    path = module_file(module)
    if path is None:
        raise ValueError(f"method {method!r}: module {module!r} is not part of {PACKAGE}")
    shared = [_segment(path, n) for n in _tree(path).body if not isinstance(n, ast.ClassDef)]
    own = _class_segments(path, cls, set())
    if not own:
        raise ValueError(f"method {method!r}: class {cls!r} not found in {path.name}")
    return _digest([(module, "\n".join(shared).encode()), (cls, "\n".join(own).encode())])


def job_version(family: str, method: str) -> str:
    """The version string a training job carries in its params (readable in rerun reasons)."""
    return f"loop={loop_version()} family={family_version(family)} method={method_version(method)}"
