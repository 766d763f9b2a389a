"""Plugin discovery through entry points, plus ``register_plugin`` for notebooks.

Two kinds of plugin, two entry-point groups: input (modality) plugins under ``anymal.plugins``
(:class:`anymal.plugin.ModalityPlugin`) and output plugins under ``anymal.outputs``
(:class:`anymal.output_plugin.OutputPlugin`). Their names live in separate namespaces: an output plugin's name is
never a ``<placeholder>`` or a ``generate`` keyword. Entry points are only imported when a plugin is asked for by
name (or when all are listed), so importing anymal stays cheap and one broken third-party plugin cannot stop the
others from working.
"""

from __future__ import annotations

import re
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from anymal.errors import PluginError
from anymal.output_plugin import OutputPlugin
from anymal.plugin import ModalityPlugin

ENTRY_POINT_GROUP = "anymal.plugins"
OUTPUT_ENTRY_POINT_GROUP = "anymal.outputs"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

_registered: dict[str, type[ModalityPlugin]] = {}
_loaded: dict[str, type[ModalityPlugin]] = {}
_registered_outputs: dict[str, type[OutputPlugin]] = {}
_loaded_outputs: dict[str, type[OutputPlugin]] = {}


def _group_entry_points(group: str) -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, []).append(ep)
    # the same distribution can be seen twice (e.g. an editable install plus a build dir); dedupe by target
    return {name: list({ep.value: ep for ep in eps}.values()) for name, eps in found.items()}


def _entry_points() -> dict[str, list[EntryPoint]]:
    return _group_entry_points(ENTRY_POINT_GROUP)


def _output_entry_points() -> dict[str, list[EntryPoint]]:
    return _group_entry_points(OUTPUT_ENTRY_POINT_GROUP)


def entry_point_names() -> list[str]:
    """Names installed under the ``anymal.plugins`` entry-point group, without importing any of the plugins."""
    return sorted(_entry_points())


def output_entry_point_names() -> list[str]:
    """Names installed under the ``anymal.outputs`` entry-point group, without importing any of them."""
    return sorted(_output_entry_points())


def _validate(cls: Any, name: str | None, base: type = ModalityPlugin) -> Any:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(f"plugin {name!r}: {cls!r} is not a subclass of anymal.{base.__name__}")
    plugin_name = getattr(cls, "name", "")
    if not _NAME_RE.match(plugin_name or ""):
        raise PluginError(f"plugin class {cls.__qualname__}: name {plugin_name!r} must be a lowercase identifier")
    if name is not None and plugin_name != name:
        raise PluginError(f"entry point {name!r} points to plugin class named {plugin_name!r}; the names must match")
    return cls


def _load_entry_point(name: str, eps: list[EntryPoint], base: type = ModalityPlugin) -> Any:
    if len(eps) > 1:
        targets = ", ".join(ep.value for ep in eps)
        raise PluginError(f"plugin name {name!r} is registered by several packages ({targets}); uninstall one")
    try:
        cls = eps[0].load()
    except Exception as exc:  # a broken third-party package must not take the others down
        raise PluginError(f"plugin {name!r} ({eps[0].value}) failed to import: {type(exc).__name__}: {exc}") from exc
    return _validate(cls, name, base)


def register_plugin(cls: Any, *, replace: bool = False) -> Any:
    """Registers a plugin class (input or output) by its ``name`` (usable as a class decorator). Duplicates are an
    error."""
    if isinstance(cls, type) and issubclass(cls, OutputPlugin):
        return _register_output(cls, replace)
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


def _register_output(cls: type[OutputPlugin], replace: bool) -> type[OutputPlugin]:
    _validate(cls, None, OutputPlugin)
    existing = _registered_outputs.get(cls.name)
    if existing is None and cls.name in _output_entry_points():
        existing = get_output_plugin(cls.name)
    if existing is not None and existing is not cls and not replace:
        raise PluginError(
            f"an output plugin named {cls.name!r} is already registered "
            f"({existing.__module__}.{existing.__qualname__}); pick another name or pass replace=True"
        )
    _registered_outputs[cls.name] = cls
    return cls


def unregister_plugin(name: str) -> None:
    """Removes a plugin registered with ``register_plugin`` (entry-point plugins stay installed)."""
    _registered.pop(name, None)


def unregister_output_plugin(name: str) -> None:
    """Removes an output plugin registered with ``register_plugin`` (entry-point plugins stay installed)."""
    _registered_outputs.pop(name, None)


def _lookup(name: str, registered: dict, loaded: dict, entry_points, base: type, kind: str, example: str) -> Any:
    """One lookup for both plugin kinds: registered first, then already-loaded entry points, then a fresh load
    (``entry_points()`` gives the kind's entry points by name)."""
    if name in registered:
        return registered[name]
    if name in loaded:
        return loaded[name]
    eps = entry_points()
    group = OUTPUT_ENTRY_POINT_GROUP if base is OutputPlugin else ENTRY_POINT_GROUP
    if name not in eps:
        installed = sorted(set(eps) | set(registered))
        raise PluginError(
            f"unknown {kind} {name!r}. Installed {kind}s: {', '.join(installed) or 'none'}. "
            f"Install a package that registers it under the {group!r} entry-point group "
            f"(pip install <package>), or call anymal.register_plugin({example})."
        )
    cls = _load_entry_point(name, eps[name], base)
    loaded[name] = cls
    return cls


def get_plugin(name: str) -> type[ModalityPlugin]:
    """The plugin class registered under ``name``; an unknown name lists the installed plugins."""
    return _lookup(name, _registered, _loaded, _entry_points, ModalityPlugin, "plugin", "YourPluginClass")


def get_output_plugin(name: str) -> type[OutputPlugin]:
    """The output plugin class registered under ``name``; an unknown name lists the installed output plugins."""
    return _lookup(
        name,
        _registered_outputs,
        _loaded_outputs,
        _output_entry_points,
        OutputPlugin,
        "output plugin",
        "YourOutputPluginClass",
    )


def registered_names() -> list[str]:
    """Names registered in this process with :func:`register_plugin` (not entry points), sorted."""
    return sorted(_registered)


def _list(names: set[str], eps: dict[str, list[EntryPoint]], getter) -> list[str]:
    for name in eps:
        try:
            getter(name)
        except PluginError as exc:
            warnings.warn(f"skipping plugin: {exc}", RuntimeWarning, stacklevel=3)
            continue
        names.add(name)
    return sorted(names)


def list_plugins() -> list[str]:
    """Names of the input plugins that load; broken ones are skipped with a warning naming the problem."""
    return _list(set(_registered), _entry_points(), get_plugin)


def list_output_plugins() -> list[str]:
    """Names of the output plugins that load; broken ones are skipped with a warning naming the problem."""
    return _list(set(_registered_outputs), _output_entry_points(), get_output_plugin)
