"""Every installed plugin (first-party and third-party) passes the plugin contract test kit."""

import warnings

import pytest

import anymal
from anymal.testing import check_plugin_contract

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    INSTALLED = anymal.list_plugins()


@pytest.mark.parametrize("name", INSTALLED)
def test_plugin_passes_the_contract(name):
    check_plugin_contract(name)


def test_the_kit_catches_a_plugin_that_accepts_bad_input():
    from anymal_image import ImagePlugin

    class Lenient(ImagePlugin):
        name = "lenient_test"

        def preprocess(self, raw):
            try:
                return super().preprocess(raw)
            except anymal.InputError:
                return super().preprocess(self.example_inputs()[0])

    with pytest.raises(AssertionError, match="was accepted"):
        check_plugin_contract(Lenient)


def test_the_kit_catches_a_nondeterministic_encoder():
    from anymal_image import ImagePlugin

    class Random(ImagePlugin):
        name = "random_test"
        calls = 0

        def build_encoder(self):
            type(self).calls += 1
            config = self.config
            config.init_seed = type(self).calls
            return super().build_encoder()

    with pytest.raises(AssertionError, match="different weights"):
        check_plugin_contract(Random)
