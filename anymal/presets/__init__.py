"""The seed systems of anymal's family as presets: ``build(name, size)`` for anymal, pink, qwen_vl, ullava, ying_vlm.

>>> from anymal.presets import build
>>> preset = build("pink", "7b")
>>> preset.count_parameters()["image.projector:weights"]   # on the meta device: no memory, no weights
6668288
>>> model = build("pink", "tiny").build_model()               # the same structure at CPU-test size

``python -m anymal.presets`` prints every preset's counts next to its paper's; ``--write configs/presets`` writes
the training configs (``python -m anymal.train --config configs/presets/<name>_<size>.yaml``).
"""

from anymal.presets.build import TINY, Preset, build, list_presets
from anymal.presets.catalog import PRESETS, SIZES

__all__ = ["PRESETS", "SIZES", "TINY", "Preset", "build", "list_presets"]
