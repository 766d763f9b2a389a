"""Config of the ``[LOC]`` box head: sizes of u-LLaVA's projector and location decoder, loss weights, label frame."""

from __future__ import annotations

from dataclasses import dataclass, field

from anymal.errors import ConfigError
from anymal.output_plugin import OutputPluginConfig

LABEL_FRAMES = ("pixels", "normalized")


@dataclass
class LocConfig(OutputPluginConfig):
    """The ``loc`` output plugin.

    The head is u-LLaVA's region branch: a projector MLP ``[llm_dim -> llm_dim -> projection_dim]`` (ReLU) and a
    location decoder MLP ``[projection_dim -> decoder_dims... -> 4]`` (ReLU between layers, no output activation)
    regressing normalised ``x0, y0, x1, y1`` on the image the encoder sees (after its resize / crop / pad).

    Attributes:
        projection_dim: width of the projector's output (u-LLaVA: 256).
        decoder_dims: hidden widths of the location decoder (u-LLaVA: 256, 128).
        l1_weight: weight of the L1 loss (u-LLaVA's beta1 = 1.0).
        giou_weight: weight of the GIoU loss (u-LLaVA's beta2 = 1.0).
        modality: the input plugin whose first item of a row the boxes refer to (its ``geometry`` maps them).
        label_frame: box labels in training data are ``[x0, y0, x1, y1]`` in the original image's ``pixels`` or
            ``normalized`` to it ([0, 1]).
    """

    plugin_type: str = "loc"
    projection_dim: int = 256
    decoder_dims: list[int] = field(default_factory=lambda: [256, 128])
    l1_weight: float = 1.0
    giou_weight: float = 1.0
    modality: str = "image"
    label_frame: str = "pixels"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.projection_dim < 1 or any(d < 1 for d in self.decoder_dims):
            raise ConfigError(
                f"projection_dim={self.projection_dim}, decoder_dims={self.decoder_dims}: widths must be >= 1"
            )
        for name in ("l1_weight", "giou_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected a number >= 0")
        if self.label_frame not in LABEL_FRAMES:
            raise ConfigError(f"label_frame={self.label_frame!r}: expected one of {', '.join(LABEL_FRAMES)}")
