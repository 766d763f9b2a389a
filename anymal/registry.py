"""Plugin discovery through the ``anymal.plugins`` entry-point group, plus ``register_plugin`` for notebooks.

Entry points are only imported when a plugin is asked for by name (or when all are listed), so importing anymal
stays cheap and one broken third-party plugin cannot stop the others from working.
"""

from __future__ import annotations

import re
import warnings
from importlib.metadata import EntryPoint, entry_points

from anymal.errors import PluginError
from anymal.plugin import ModalityPlugin

ENTRY_POINT_GROUP = "anymal.plugins"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

_registered: dict[str, type[ModalityPlugin]] = {}
_loaded: dict[str, type[ModalityPlugin]] = {}


def _entry_points() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, []).append(ep)
    # the same distribution can be seen twice (e.g. an editable install plus a build dir); dedupe by target
    return {name: list({ep.value: ep for ep in eps}.values()) for name, eps in found.items()}


def entry_point_names() -> list[str]:
    """Names installed under the ``anymal.plugins`` entry-point group, without importing any of the plugins."""
    return sorted(_entry_points())


def _validate(cls: object, name: str | None) -> type[ModalityPlugin]:
    if not (isinstance(cls, type) and issubclass(cls, ModalityPlugin)):
        raise PluginError(f"plugin {name!r}: {cls!r} is not a subclass of anymal.ModalityPlugin")
    if not _NAME_RE.match(cls.name or ""):
        raise PluginError(f"plugin class {cls.__qualname__}: name {cls.name!r} must be a lowercase identifier")
    if name is not None and cls.name != name:
        raise PluginError(f"entry point {name!r} points to plugin class named {cls.name!r}; the names must match")
    return cls


def _load_entry_point(name: str, eps: list[EntryPoint]) -> type[ModalityPlugin]:
    if len(eps) > 1:
        targets = ", ".join(ep.value for ep in eps)
        raise PluginError(f"plugin name {name!r} is registered by several packages ({targets}); uninstall one")
    try:
        cls = eps[0].load()
    except Exception as exc:  # a broken third-party package must not take the others down
        raise PluginError(f"plugin {name!r} ({eps[0].value}) failed to import: {type(exc).__name__}: {exc}") from exc
    return _validate(cls, name)


def register_plugin(cls: type[ModalityPlugin], *, replace: bool = False) -> type[ModalityPlugin]:
    """Registers a plugin class by its ``name`` (usable as a class decorator). Duplicates are an error."""
    _validate(cls, None)
    existing = _registered.get(cls.name)
    if existing is None and cls.name in _entry_points():
        existing = get_plugin(cls.name)
    if existing is not None and existing is not cls and not replace:
        raise PluginError(
            f"a plugin named {cls.name!r} is already registered ({existing.__module__}.{existing.__qualname__}); "
            "pick another name or pass replace=True"
        )
    _registered[cls.name] = cls
    return cls


def unregister_plugin(name: str) -> None:
    """Removes a plugin registered with ``register_plugin`` (entry-point plugins stay installed)."""
    _registered.pop(name, None)


def get_plugin(name: str) -> type[ModalityPlugin]:
    """The plugin class registered under ``name``; an unknown name lists the installed plugins."""
    if name in _registered:
        return _registered[name]
    if name in _loaded:
        return _loaded[name]
    eps = _entry_points()
    if name not in eps:
        installed = sorted(set(eps) | set(_registered))
        raise PluginError(
            f"unknown plugin {name!r}. Installed plugins: {', '.join(installed) or 'none'}. "
            f"Install a plugin package that registers it under the {ENTRY_POINT_GROUP!r} entry-point group "
            "(pip install <package>), or call anymal.register_plugin(YourPluginClass)."
        )
    cls = _load_entry_point(name, eps[name])
    _loaded[name] = cls
    return cls


def registered_names() -> list[str]:
    """Names registered in this process with :func:`register_plugin` (not entry points), sorted."""
    return sorted(_registered)


def list_plugins() -> list[str]:
    """Names of the plugins that load; broken ones are skipped with a warning naming the problem."""
    names = set(_registered)
    for name in _entry_points():
        try:
            get_plugin(name)
        except PluginError as exc:
            warnings.warn(f"skipping plugin: {exc}", RuntimeWarning, stacklevel=2)
            continue
        names.add(name)
    return sorted(names)
