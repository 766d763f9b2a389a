"""anymal's audio modality: LAION CLAP audio encoder (frozen) + linear projector, registered as ``audio``."""

from anymal_audio.config import AudioPluginConfig
from anymal_audio.encoder import build_audio_encoder, resolve_audio_config
from anymal_audio.features import ClapFrontEnd
from anymal_audio.io import Waveform, decode_bytes, decode_file, from_array, load_audio
from anymal_audio.laion import hf_to_laion_state_dict, infer_audio_config, laion_to_hf_state_dict, load_laion_state_dict
from anymal_audio.plugin import TINY_AUDIO_CONFIG, AudioPlugin
from anymal_audio.projector import PooledProjector, SequenceProjector
from anymal_audio.resample import prepare_waveform, resample, to_mono

__all__ = [
    "TINY_AUDIO_CONFIG",
    "AudioPlugin",
    "AudioPluginConfig",
    "ClapFrontEnd",
    "PooledProjector",
    "SequenceProjector",
    "Waveform",
    "build_audio_encoder",
    "decode_bytes",
    "decode_file",
    "from_array",
    "hf_to_laion_state_dict",
    "infer_audio_config",
    "laion_to_hf_state_dict",
    "load_audio",
    "load_laion_state_dict",
    "prepare_waveform",
    "resample",
    "resolve_audio_config",
    "to_mono",
]
