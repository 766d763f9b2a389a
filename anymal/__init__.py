"""anymal: turn a frozen, optionally quantised LLaMA-2-class LLM into an any-modality model (AnyMAL)."""

from anymal.config import AnyMALConfig, LLMConfig, QuantizationConfig
from anymal.errors import AnyMALError, CheckpointError, ConfigError, DataError, InputError, PluginError
from anymal.output_plugin import OutputPlugin, OutputPluginConfig, RowInputs, TriggerStates
from anymal.plugin import AlignmentTask, ModalityPlugin, PluginConfig, PretrainingTask
from anymal.registry import (
    get_output_plugin,
    get_plugin,
    list_output_plugins,
    list_plugins,
    register_plugin,
    unregister_plugin,
)

__version__ = "0.1.0"

# The model side pulls in transformers (seconds to import); load it on first use so that light entry points
# (``python -m anymal.plan``, config validation) start fast.
_LAZY = {
    "AnyMAL": "anymal.modeling",
    "GenerateOutput": "anymal.generation",
    "load_pretrained": "anymal.modeling",
    "save_pretrained": "anymal.checkpoint",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'anymal' has no attribute {name!r}")


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
    "OutputPlugin",
    "OutputPluginConfig",
    "PluginConfig",
    "PluginError",
    "PretrainingTask",
    "QuantizationConfig",
    "RowInputs",
    "TriggerStates",
    "get_output_plugin",
    "get_plugin",
    "list_output_plugins",
    "list_plugins",
    "load_pretrained",
    "register_plugin",
    "save_pretrained",
    "unregister_plugin",
]
