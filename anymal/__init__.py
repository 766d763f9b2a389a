"""anymal: turn a frozen, optionally quantised LLaMA-2-class LLM into an any-modality model (AnyMAL)."""

from anymal.checkpoint import load_pretrained, save_pretrained
from anymal.config import AnyMALConfig, LLMConfig, PluginConfig, QuantizationConfig
from anymal.errors import AnyMALError, CheckpointError, ConfigError, DataError, InputError, PluginError
from anymal.generation import GenerateOutput
from anymal.modeling import AnyMAL
from anymal.plugin import AlignmentTask, ModalityPlugin, PretrainingTask
from anymal.registry import get_plugin, list_plugins, register_plugin, unregister_plugin

__version__ = "0.1.0"

__all__ = [
    "AlignmentTask",
    "AnyMAL",
    "AnyMALConfig",
    "AnyMALError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GenerateOutput",
    "InputError",
    "LLMConfig",
    "ModalityPlugin",
    "PluginConfig",
    "PluginError",
    "PretrainingTask",
    "QuantizationConfig",
    "get_plugin",
    "list_plugins",
    "load_pretrained",
    "register_plugin",
    "save_pretrained",
    "unregister_plugin",
]
