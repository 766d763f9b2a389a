"""anymal-depth: depth maps as an anymal input modality (an example of a third-party plugin package)."""

from anymal_depth.plugin import DepthPlugin, DepthPluginConfig

__all__ = ["DepthPlugin", "DepthPluginConfig"]
