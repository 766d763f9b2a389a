"""``python -m anymal demo``: the whole AnyMAL pipeline learning, on CPU, in minutes (see ``docs/demo.md``).

An application built on anymal, not part of the library: it imports ``anymal`` and the first-party plugins, and
``anymal`` never imports it (``python -m anymal demo`` loads it only when that command runs).

A synthetic multi-modal world with known ground truth (:mod:`anymal_demo.world`), a small LLaMA-architecture LM
trained on its text as the stand-in for LLaMA-2 (:mod:`anymal_demo.language`), the training stages run through
``anymal.train`` from the YAML files of ``anymal_demo/configs``, shipped inside the package
(:mod:`anymal_demo.stages`), held-out evaluation computed from the generations shown (:mod:`anymal_demo.evaluate`)
and the report (:mod:`anymal_demo.report`). The command line is :mod:`anymal_demo.cli`.
"""

from anymal_demo.run import run_demo
from anymal_demo.settings import DemoSettings, load_settings

__all__ = ["DemoSettings", "load_settings", "run_demo"]
