"""The demo's own settings (world size, stand-in LM, per-stage overrides, evaluation), from ``configs/demo.yaml``.

The file holds the full run's settings and, under ``quick:``, what ``--quick`` changes; OmegaConf merges the two and
the typed dataclasses below validate the result, through anymal's one config loader (``anymal.config``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from anymal.config import config_from_dict, merge_overrides
from anymal.errors import ConfigError
from anymal_demo.language import LanguageModelConfig
from anymal_demo.stages import CONFIG_DIR, read_yaml
from anymal_demo.vision import VisionPretrainingConfig
from anymal_demo.world.writer import WorldConfig

STAGES = ("align_image", "align_audio", "align_imu", "align_video", "instruct")
ENCODER_PRETRAINING = "imu_encoder"


@dataclass
class EvaluationSettings:
    """How the held-out evaluation runs.

    Attributes:
        heldout_per_task: at most this many prompts per table row (``None``: every held-out item).
        batch_size: prompts per ``generate`` call.
        max_new_tokens: generation length (captions are about 12 tokens).
        show_examples: generations shown per task at the end.
        before_training: also evaluate the untrained model (random projectors), for the "before" column.
        after_alignment: also evaluate after stage 1, for the "stage 1" column.
    """

    heldout_per_task: int | None = None
    batch_size: int = 32
    max_new_tokens: int = 20
    show_examples: int = 2
    before_training: bool = True
    after_alignment: bool = True


@dataclass
class DemoSettings:
    """Everything ``python -m anymal demo`` needs beyond the stage configs.

    Attributes:
        world: size of the synthetic world.
        language_model: size and schedule of the stand-in LM.
        vision_encoder: schedule of the tiny CLIP that becomes the (frozen) image and video tower.
        overrides: per stage config (``imu_encoder``, ``align_image``, ..., ``instruct``), ``key=value`` overrides
            applied on top of the YAML file, exactly like extra arguments to ``python -m anymal.train``.
        evaluation: held-out evaluation settings.
        threads: torch CPU threads; 0 picks them from the free cores at start-up.
        seed: the whole run's seed. ``demo.yaml`` passes it to the world, the stand-in LM and the vision tower
            (``${seed}``), and every training stage gets ``seed=<seed>``: another seed is another world and
            another training run, which is how the README's spread over seeds is measured.
    """

    world: WorldConfig = field(default_factory=WorldConfig)
    language_model: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    vision_encoder: VisionPretrainingConfig = field(default_factory=VisionPretrainingConfig)
    overrides: dict[str, list[str]] = field(default_factory=dict)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    threads: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.overrides) - {*STAGES, ENCODER_PRETRAINING}
        if unknown:
            raise ConfigError(
                f"overrides: unknown stage(s) {sorted(unknown)}; expected {ENCODER_PRETRAINING}, {', '.join(STAGES)}"
            )
        if self.threads < 0:
            raise ConfigError(f"threads={self.threads}: expected 0 (automatic) or a positive number")


def load_settings(
    quick: bool = False, config_dir: Path = CONFIG_DIR, overrides: list[str] | None = None
) -> DemoSettings:
    """Reads ``demo.yaml`` (merging its ``quick:`` section when ``quick``) and ``key=value`` overrides."""
    data = read_yaml(config_dir / "demo.yaml")
    quick_part = data.pop("quick", {}) or {}
    merged = merge_overrides(data, quick_part if quick else {}, overrides=list(overrides or []))
    return config_from_dict(DemoSettings, merged, "demo.yaml")
