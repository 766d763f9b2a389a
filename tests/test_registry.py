import warnings
from importlib.metadata import EntryPoint

import pytest

import anymal
from anymal import registry
from anymal.errors import PluginError
from anymal_image import ImagePlugin


def test_first_party_image_plugin_is_found_through_its_entry_point():
    assert "image" in registry._entry_points()
    assert anymal.get_plugin("image") is ImagePlugin
    assert "image" in anymal.list_plugins()


def test_unknown_plugin_error_lists_installed_plugins_and_how_to_install():
    with pytest.raises(PluginError) as info:
        anymal.get_plugin("smell")
    message = str(info.value)
    assert "'smell'" in message and "image" in message and "pip install" in message


def test_register_plugin_for_notebooks_and_duplicate_names():
    class Depth(ImagePlugin):
        name = "depth_test"

    try:
        assert anymal.register_plugin(Depth) is Depth
        assert anymal.get_plugin("depth_test") is Depth
        anymal.register_plugin(Depth)  # the same class again is a no-op

        class Other(ImagePlugin):
            name = "depth_test"

        with pytest.raises(PluginError, match="already registered"):
            anymal.register_plugin(Other)

        class Image2(ImagePlugin):
            name = "image"

        with pytest.raises(PluginError, match="already registered"):
            anymal.register_plugin(Image2)
    finally:
        anymal.unregister_plugin("depth_test")


def test_invalid_plugin_classes_are_rejected():
    class Bad(ImagePlugin):
        name = "Not-Lowercase"

    with pytest.raises(PluginError, match="lowercase identifier"):
        anymal.register_plugin(Bad)
    with pytest.raises(PluginError, match="not a subclass"):
        anymal.register_plugin(dict)


def test_broken_third_party_plugin_is_skipped_when_listing_and_raises_by_name(monkeypatch):
    broken = EntryPoint(name="broken", value="anymal_no_such_module:Plugin", group=registry.ENTRY_POINT_GROUP)
    real = registry._entry_points

    monkeypatch.setattr(registry, "_entry_points", lambda: {**real(), "broken": [broken]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = anymal.list_plugins()
    assert "broken" not in names and "image" in names
    assert any("broken" in str(w.message) and "failed to import" in str(w.message) for w in caught)
    with pytest.raises(PluginError, match="anymal_no_such_module"):
        anymal.get_plugin("broken")


def test_two_packages_claiming_one_name_is_an_error(monkeypatch):
    a = EntryPoint(name="twin", value="pkg_a:Plugin", group=registry.ENTRY_POINT_GROUP)
    b = EntryPoint(name="twin", value="pkg_b:Plugin", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: {"twin": [a, b]})
    with pytest.raises(PluginError, match="several packages"):
        anymal.get_plugin("twin")


def test_importing_anymal_does_not_import_plugins():
    import subprocess
    import sys

    code = "import sys, anymal; print(any(m.startswith('anymal_') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
