"""Where laws come from: the built-in ``laws/`` folder, entry points, and user files.

* Built-in: in a source checkout (editable install included) the repository's ``laws/`` folder is read
  directly, so an edit is never shadowed by a stale copy; an installed wheel carries the same files as
  ``scalefit/_builtin_laws/``.
* Third-party: the entry-point group ``scalefit.laws``; each entry point names a Law object (or a
  module whose Law objects are all taken). ``SCALEFIT_DISABLE_PLUGINS=1`` skips them.
* Ad hoc: ``--law-file path.py`` loads every Law defined in that file; it overrides a same-named law.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

from .errors import LawDefinitionError, LawNotFoundError
from .law import Law

ENTRY_POINT_GROUP = "scalefit.laws"
_PACKAGE_DIR = Path(__file__).resolve().parent
_cache: dict[str, Law] | None = None
_user: dict[str, Law] = {}
_single: dict[str, Law] = {}  # built-in laws loaded from their own file alone, before any discovery


def builtin_dir() -> Path:
    checkout = _PACKAGE_DIR.parent / "laws"
    if checkout.is_dir() and (_PACKAGE_DIR.parent / "pyproject.toml").exists():
        return checkout
    return _PACKAGE_DIR / "_builtin_laws"


def _laws_in_module(module: ModuleType) -> list[Law]:
    """Law instances in the module, plus named Law subclasses defined there that have no instance."""
    instances = [v for v in vars(module).values() if isinstance(v, Law)]
    have = {type(obj) for obj in instances}
    classes = [
        v()
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, Law) and v.__module__ == module.__name__
        and getattr(v, "name", "") and v not in have
    ]
    unique: dict[int, Law] = {}
    for obj in instances + classes:
        unique.setdefault(id(obj), obj)
    return list(unique.values())


def load_law_file(path: str | Path, origin: str | None = None) -> list[Law]:
    """Import a Python file and return the laws it defines (validated)."""
    path = Path(path).resolve()
    if not path.exists():
        raise LawDefinitionError(f"{path}: law file not found")
    if path.suffix != ".py":
        raise LawDefinitionError(f"{path}: a law file must be a .py file")
    mod_name = f"scalefit._laws.{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise LawDefinitionError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # registered first, so laws pickle for parallel bootstrap
    try:
        spec.loader.exec_module(module)
    except LawDefinitionError as exc:
        sys.modules.pop(mod_name, None)
        raise LawDefinitionError(f"{path}: {exc}") from None
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise LawDefinitionError(f"{path}: failed to import: {type(exc).__name__}: {exc}") from None
    laws = _laws_in_module(module)
    if not laws:
        raise LawDefinitionError(f"{path}: defines no law (a Law instance, Law subclass with a name, or @law function)")
    for obj in laws:
        obj.origin = origin or f"file:{path}"
        obj.source_file = str(path)
        obj._restore = restore_law  # how a worker process gets this law back (see Law.__reduce_ex__)
        if not obj.description:
            obj.description = (module.__doc__ or "").strip()
        try:
            obj.validate()
        except LawDefinitionError as exc:
            raise LawDefinitionError(f"{path}: {exc}") from None
    return laws


def _discover() -> dict[str, Law]:
    laws: dict[str, Law] = {}
    folder = builtin_dir()
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        for obj in load_law_file(path, origin="builtin"):
            if obj.name in laws:
                raise LawDefinitionError(f"{path}: law '{obj.name}' is also defined in {laws[obj.name].source_file}")
            laws[obj.name] = obj
    if os.environ.get("SCALEFIT_DISABLE_PLUGINS") != "1":
        from importlib import metadata  # here: importing it is a large share of `scalefit predict`'s start-up

        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = f"{ep.dist.name}=={ep.dist.version}" if ep.dist else "?"
            try:
                objs = _plugin_laws(ep, dist)
            except Exception as exc:  # a broken plugin must not take every other law down with it
                warnings.warn(f"law plugin '{ep.name}' ({dist}) was skipped: {type(exc).__name__}: {exc}; "
                              f"fix or uninstall it, or set SCALEFIT_DISABLE_PLUGINS=1", stacklevel=2)
                continue
            for obj in objs:
                if obj.name in laws:
                    warnings.warn(f"law '{obj.name}' from {dist} is shadowed by {laws[obj.name].origin}", stacklevel=2)
                    continue
                laws[obj.name] = obj
    return laws


def _plugin_laws(ep, dist: str) -> list[Law]:
    """The validated laws one entry point provides (raises on anything broken)."""
    loaded = ep.load()
    objs = _laws_in_module(loaded) if isinstance(loaded, ModuleType) else [loaded]
    out = []
    for obj in objs:
        if isinstance(obj, type) and issubclass(obj, Law):
            obj = obj()
        if not isinstance(obj, Law):
            raise LawDefinitionError(f"entry point '{ep.name}' is not a scalefit Law")
        obj.origin = f"entrypoint:{dist}"
        obj.validate()
        out.append(obj)
    return out


def all_laws() -> dict[str, Law]:
    """Every known law by name: built-in, plugins, then files registered with :func:`register_file`."""
    global _cache
    if _cache is None:
        _cache = _discover()
    return {**_cache, **_user}


def register_file(path: str | Path) -> list[Law]:
    """Load ``--law-file`` laws; they override same-named laws (with a warning)."""
    laws = load_law_file(path)
    known = all_laws()
    for obj in laws:
        if obj.name in known and known[obj.name].source_file != obj.source_file:
            warnings.warn(f"law '{obj.name}' from {path} overrides the one from {known[obj.name].origin}", stacklevel=2)
        _user[obj.name] = obj
    return laws


def get_law(name: str | Law, law_files: list[str] | tuple[str, ...] = ()) -> Law:
    """A law by name (after loading ``law_files``); LawNotFoundError lists the known names."""
    if isinstance(name, Law):
        return name
    if not isinstance(name, str) or not name.isidentifier():
        # A name is looked up, never used as a path: a fit.json must not be able to import a file.
        raise LawNotFoundError(f"unknown law {str(name)[:60]!r}: a law name is letters, digits and _ only")
    for path in law_files or ():
        register_file(path)
    if _cache is None and name not in _user:
        law = _builtin_alone(name)
        if law is not None:
            return law
    laws = all_laws()
    if name not in laws:
        raise LawNotFoundError(f"unknown law '{name}'; known laws: {', '.join(sorted(laws))}")
    return laws[name]


def _builtin_alone(name: str) -> Law | None:
    """The built-in law ``name`` from its own file, laws/<name>.py, without importing the others: keeps
    `scalefit predict` quick, and a worker process's first task from importing every law. Loaded once."""
    if not name.isidentifier() or name.startswith("_"):  # a name, never a path (as get_law checks)
        return None
    if name not in _single:
        path = builtin_dir() / f"{name}.py"
        if not path.is_file():
            return None
        found = [obj for obj in load_law_file(path, origin="builtin") if obj.name == name]
        if not found:
            return None
        _single[name] = found[0]
    return _single[name]


def restore_law(name: str, source_file: str, options: dict | None = None, origin: str | None = None,
                source_hash: str | None = None, params: dict | None = None) -> Law:
    """Unpickle a law sent to a worker (:meth:`scalefit.law.Law.__reduce_ex__`). A built-in law is this
    process's own built-in of that name, wherever its file lies (a worker on another machine may have
    scalefit installed elsewhere); any other law is the registry's copy when it is the same file, else the
    file loaded. Then the options and parameter declarations (bounds the caller narrowed) it was sent with;
    a law whose source differs from the sender's (``source_hash``) is refused: the worker would fit
    another law."""
    known = None
    if origin == "builtin":
        here = _builtin_alone(name) if _cache is None else _cache.get(name)
        known = here if here is not None and here.origin == "builtin" else None
    if known is None:
        known = _user.get(name)
        if known is None or known.source_file != source_file:
            known = all_laws().get(name)
        if known is None or known.source_file != source_file:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the parent process already warned about any override
                laws = {obj.name: obj for obj in register_file(source_file)}
            if name not in laws:
                raise LawDefinitionError(f"{source_file}: no longer defines law '{name}'")
            known = laws[name]
    if source_hash is not None and known.source_hash() != source_hash:
        raise LawDefinitionError(f"law '{name}': this worker's {known.source_file} differs from the file the fit "
                                 f"was started with (source {known.source_hash()}, not {source_hash}); install "
                                 f"the same scalefit version and law files on every worker")
    law = known.with_options(**options) if options and options != known.options else known
    return law.with_params(params) if params is not None and params != law.params else law
