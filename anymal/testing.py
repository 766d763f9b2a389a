"""Tiny presets and the plugin contract test kit, importable by third-party plugin packages.

``tiny_anymal()`` gives a ready model in a second on CPU with no downloads: a random 2-layer LLaMA (hidden size 32)
saved to a local cache folder (so checkpoints can reference it by path, exactly like a hub model) and each plugin's
``tiny_config()``. ``check_plugin_contract()`` runs a plugin through what the core relies on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from anymal.config import AnyMALConfig, LLMConfig, PluginConfig, QuantizationConfig, config_from_dict, config_to_dict
from anymal.errors import InputError
from anymal.fingerprint import fingerprint_module
from anymal.registry import get_plugin

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("ANYMAL_ASSETS", REPO_ROOT.parent / "shared" / "assets"))
LLAMA2_TOKENIZER = ASSETS / "tokenizer" / "llama2_hf"
STORIES260K = ASSETS / "models" / "stories260K_hf"

TINY_CORPUS = (
    "a photo of a cat on a pink couch . a dog barks in the rain . a person is walking , running or standing . "
    "describe this image briefly . what is in this audio clip ? the video shows a moving red square . "
    "once upon a time there was a little girl named lily who liked to play outside with her ball ."
)


def cache_dir() -> Path:
    """Where tiny models are kept between runs (``ANYMAL_CACHE`` overrides)."""
    root = Path(os.environ.get("ANYMAL_CACHE", Path.home() / ".cache" / "anymal")) / "tiny"
    root.mkdir(parents=True, exist_ok=True)
    return root


def train_tiny_tokenizer(corpus: str = TINY_CORPUS, vocab_size: int = 320):
    """A small byte-level BPE tokenizer with LLaMA-style special tokens, trained in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([corpus], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )


def _atomic_folder(target: Path, write) -> Path:
    if target.is_dir():
        return target
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.is_dir():
            raise
    return target


def tiny_llm_folder(tokenizer: str | os.PathLike | None = None, seed: int = 0, **overrides: Any) -> Path:
    """A local HF folder with a random tiny LLaMA and a tokenizer (the real LLaMA-2 one if ``tokenizer`` names it)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tokenizer)) if tokenizer else train_tiny_tokenizer()
    arch = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    arch.update(overrides)
    key = hashlib.sha256(json.dumps([arch, str(tokenizer), seed], sort_keys=True).encode()).hexdigest()[:12]

    def write(folder: Path) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LlamaForCausalLM(LlamaConfig(**arch))
        model.save_pretrained(str(folder))
        tok.save_pretrained(str(folder))

    return _atomic_folder(cache_dir() / f"llama-{key}", write)


def tiny_anymal(
    plugins: Iterable[str] | Mapping[str, PluginConfig] = ("image",),
    llm: str | os.PathLike | None = None,
    tokenizer: str | os.PathLike | None = None,
    quantization: str = "none",
    apply_chat_template: bool = False,
    seed: int = 0,
):
    """A ready tiny AnyMAL: ``llm`` is a local HF folder (e.g. stories260K) or ``None`` for a random tiny LLaMA."""
    from anymal.modeling import AnyMAL

    if isinstance(plugins, Mapping):
        modalities = dict(plugins)
    else:
        modalities = {name: get_plugin(name).tiny_config() for name in plugins}
    llm_path = str(llm) if llm is not None else str(tiny_llm_folder(tokenizer))
    config = AnyMALConfig(
        llm=LLMConfig(
            name_or_path=llm_path,
            tokenizer=str(tokenizer) if (tokenizer and llm is not None) else None,
            quantization=QuantizationConfig(mode=quantization),
            apply_chat_template=apply_chat_template,
        ),
        modalities=modalities,
        seed=seed,
    )
    return AnyMAL(config)


# --- contract test kit -------------------------------------------------------------------------------------------
def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_plugin_contract(plugin: str | type, llm_dim: int = 32, atol: float = 1e-5) -> None:
    """Runs one plugin through the contract the core relies on; raises ``AssertionError`` naming what failed.

    Checks: config round trip; deterministic encoder; shapes and dtypes; frozen encoder / trainable projector;
    projector save/load round trip (bit-exact); batch-vs-single parity; bad inputs raise ``InputError``.
    """
    from safetensors.torch import load, save

    from anymal.llm import freeze

    cls = get_plugin(plugin) if isinstance(plugin, str) else plugin
    name = cls.name
    config = cls.tiny_config()
    _check(isinstance(config, cls.config_class), f"{name}: tiny_config() is not a {cls.config_class.__name__}")
    again = config_from_dict(cls.config_class, json.loads(json.dumps(config_to_dict(config))), name)
    _check(again == config, f"{name}: config does not survive a JSON round trip")
    instance = cls(config)

    encoder = freeze(instance.build_encoder())
    _check(
        fingerprint_module(encoder) == fingerprint_module(cls(config).build_encoder()),
        f"{name}: building the encoder twice from the same config gives different weights (seed the init)",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        projector = instance.build_projector(llm_dim)
    params = list(projector.parameters())
    _check(bool(params) and all(p.requires_grad for p in params), f"{name}: projector parameters must be trainable")

    raws = instance.example_inputs()
    _check(len(raws) >= 2, f"{name}: example_inputs() must give at least two inputs")
    items = [instance.preprocess(raw) for raw in raws]
    with torch.no_grad():
        feats = instance.encode(encoder, instance.collate(items))
    tokens = instance.project(projector, feats)
    expected = (len(raws), instance.num_tokens, llm_dim)
    _check(tuple(tokens.shape) == expected, f"{name}: projected shape {tuple(tokens.shape)}, expected {expected}")
    _check(tokens.dtype == torch.float32, f"{name}: projected dtype {tokens.dtype}, expected float32 on CPU")
    _check(bool(torch.isfinite(tokens).all()), f"{name}: projected tokens are not finite")

    tokens.float().pow(2).mean().backward()
    _check(all(p.grad is not None for p in params), f"{name}: some projector parameters get no gradient")
    _check(all(p.grad is None for p in encoder.parameters()), f"{name}: the frozen encoder received gradients")

    with torch.no_grad():
        single = instance.project(projector, instance.encode(encoder, instance.collate(items[:1])))
        _check(
            torch.allclose(single[0], tokens[0].detach(), atol=atol, rtol=1e-4),
            f"{name}: item 0 encodes differently alone than in a batch (max diff "
            f"{(single[0] - tokens[0]).abs().max():.3g})",
        )
        blob = save({k: v.contiguous() for k, v in projector.state_dict().items()})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            reloaded = instance.build_projector(llm_dim)
        reloaded.load_state_dict(load(blob))
        again_tokens = instance.project(reloaded, feats)
        _check(torch.equal(again_tokens, tokens.detach()), f"{name}: projector save/load round trip is not bit-exact")

    for bad in instance.bad_inputs():
        try:
            instance.preprocess(bad)
        except InputError:
            continue
        except Exception as exc:
            raise AssertionError(f"{name}: bad input {bad!r:.60} raised {type(exc).__name__}, not InputError") from exc
        raise AssertionError(f"{name}: bad input {bad!r:.60} was accepted; preprocess must raise InputError")
