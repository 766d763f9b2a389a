"""``python -m anymal demo``: the whole AnyMAL pipeline learning, on CPU, in minutes (see ``docs/demo.md``).

A synthetic multi-modal world with known ground truth (:mod:`anymal.demo.world`), a small LLaMA-architecture LM
trained on its text as the stand-in for LLaMA-2 (:mod:`anymal.demo.language`), the training stages run through
``anymal.train`` from ``configs/demo`` (:mod:`anymal.demo.stages`), held-out evaluation computed from the
generations shown (:mod:`anymal.demo.evaluate`) and the report (:mod:`anymal.demo.report`).
"""

from anymal.demo.run import run_demo
from anymal.demo.settings import DemoSettings, load_settings

__all__ = ["DemoSettings", "load_settings", "run_demo"]
