"""Tiny presets, a toy plugin, the shared-asset locator and the plugin contract test kit, importable by third-party
plugin packages.

``tiny_anymal()`` gives a ready model in a second on CPU with no downloads: a random 2-layer LLaMA (hidden size 32)
saved to a local cache folder (so checkpoints can reference it by path, exactly like a hub model) and each plugin's
``tiny_config()``. ``ToyPlugin`` (registered as ``toy``) is a modality with no dependency beyond torch.
``assets_dir()`` / ``asset()`` / ``require_asset()`` find the shared real assets (``$ANYMAL_ASSETS``).
``check_plugin_contract()`` runs a plugin through what the core relies on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anymal.atomic import create_dir_once
from anymal.config import AnyMALConfig, LLMConfig, PluginConfig, QuantizationConfig, config_from_dict, config_to_dict
from anymal.errors import ConfigError, InputError
from anymal.fingerprint import fingerprint_module
from anymal.output_plugin import OutputPlugin
from anymal.plugin import ModalityPlugin
from anymal.registry import get_plugin, register_plugin

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS_ENV = "ANYMAL_ASSETS"
DEFAULT_ASSETS = REPO_ROOT.parent / "shared" / "assets"
LLAMA2_TOKENIZER_ASSET = "tokenizer/llama2_hf"
STORIES260K_ASSET = "models/stories260K_hf"

TINY_CORPUS = (
    "a photo of a cat on a pink couch . a dog barks in the rain . a person is walking , running or standing . "
    "describe this image briefly . what is in this audio clip ? the video shows a moving red square . "
    "once upon a time there was a little girl named lily who liked to play outside with her ball ."
)


# --- the shared real assets ---------------------------------------------------------------------------------------
def assets_dir() -> Path:
    """The folder of shared real test assets: ``$ANYMAL_ASSETS`` if set, else ``../shared/assets`` beside the repo.

    The environment is read at each call, so a test (or a CI job) that points ``ANYMAL_ASSETS`` elsewhere is
    honoured even after this module was imported. The folder's ``MANIFEST.md`` lists what it holds.
    """
    override = os.environ.get(ASSETS_ENV)
    return Path(override).expanduser() if override else DEFAULT_ASSETS


def asset(relpath: str | os.PathLike = "") -> Path:
    """The path of one shared asset, e.g. ``asset("audio/jfk.flac")``; not checked (``require_asset`` checks)."""
    return assets_dir() / relpath


def require_asset(relpath: str | os.PathLike = "", pattern: str | None = None, min_count: int = 1):
    """In a test: the path of an asset (or, with ``pattern``, the sorted matches of that glob inside it), skipping
    the test with a message that names the missing path and how to provide it when it is absent.

    Args:
        relpath: the file or folder, relative to :func:`assets_dir`.
        pattern: a glob inside ``relpath``; then at least ``min_count`` matches are required and a list is returned.
        min_count: how many matches of ``pattern`` the test needs.
    """
    import pytest

    path = asset(relpath)
    if pattern is None:
        if path.exists():
            return path
        found_text = "is absent"
    else:
        matches = sorted(path.glob(pattern))
        if len(matches) >= min_count:
            return matches
        found_text = f"holds {len(matches)} match(es) of {pattern!r}, the test needs {min_count}"
    pytest.skip(
        f"real test asset {path} {found_text}: put the shared assets at {DEFAULT_ASSETS} "
        f"or point {ASSETS_ENV} at a copy (see MANIFEST.md there)"
    )


def captioned_photos(ordered: bool = False) -> list[tuple[Path, str]]:
    """The shared COCO photos that have a reference caption, as ``(path, caption)`` pairs, in ``captions.json``'s
    order (``ordered``: by file name); the caption set the training tests, presets and benches align on."""
    captions = json.loads(asset("images/captions.json").read_text())
    items = sorted(captions.items()) if ordered else list(captions.items())
    return [
        (asset("images") / name, info["clipcap_generated_caption"])
        for name, info in items
        if isinstance(info, dict) and info.get("clipcap_generated_caption")
    ]


def __getattr__(name: str) -> Path:
    # the older constants, resolved when they are read so that they follow ANYMAL_ASSETS too
    relpaths = {"ASSETS": "", "LLAMA2_TOKENIZER": LLAMA2_TOKENIZER_ASSET, "STORIES260K": STORIES260K_ASSET}
    if name in relpaths:
        return asset(relpaths[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

    return create_dir_once(cache_dir() / f"llama-{key}", write)


def tiny_anymal(
    plugins: Iterable[str] | Mapping[str, PluginConfig] = ("image",),
    llm: str | os.PathLike | None = None,
    tokenizer: str | os.PathLike | None = None,
    quantization: str = "none",
    apply_chat_template: bool = False,
    seed: int = 0,
    outputs: Iterable[str] | Mapping[str, Any] = (),
):
    """A ready tiny AnyMAL: ``llm`` is a local HF folder (e.g. stories260K) or ``None`` for a random tiny LLaMA.

    ``outputs`` adds output plugins: names (each with its ``tiny_config()``) or a mapping of name to config.
    """
    from anymal.modeling import AnyMAL
    from anymal.registry import get_output_plugin

    if isinstance(plugins, Mapping):
        modalities = dict(plugins)
    else:
        modalities = {name: get_plugin(name).tiny_config() for name in plugins}
    if isinstance(outputs, Mapping):
        heads = dict(outputs)
    else:
        heads = {name: get_output_plugin(name).tiny_config() for name in outputs}
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
        outputs=heads,
    )
    return AnyMAL(config)


# --- a dependency-free toy plugin ---------------------------------------------------------------------------------
@dataclass
class ToyPluginConfig(PluginConfig):
    """Config of the ``toy`` plugin: ``input_dim`` numbers in, a linear encoder to ``feature_dim``, a linear projector.

    ``init_seed`` seeds the encoder's random weights, so the same config rebuilds the same encoder bit for bit.
    """

    plugin_type: str = "toy"
    num_tokens: int = 4
    input_dim: int = 8
    feature_dim: int = 16
    init_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.input_dim, self.feature_dim) < 1:
            raise ConfigError(f"input_dim={self.input_dim}, feature_dim={self.feature_dim}: both must be >= 1")


class ToyProjector(nn.Module):
    """One linear layer from encoder features to ``num_tokens`` LLM embeddings: ``[n, F] -> [n, num_tokens, D]``."""

    def __init__(self, feature_dim: int, llm_dim: int, num_tokens: int) -> None:
        super().__init__()
        self.num_tokens, self.llm_dim = num_tokens, llm_dim
        self.linear = nn.Linear(feature_dim, num_tokens * llm_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).view(features.shape[0], self.num_tokens, self.llm_dim)


class ToyPlugin(ModalityPlugin):
    """The ``toy`` modality: a vector of ``input_dim`` numbers, a frozen random linear encoder, a linear projector.

    It needs nothing beyond torch and builds in milliseconds, so tests of the core (fusion, the model, generation,
    checkpoints, training, data) can use a real plugin without open_clip or CLAP. Registered on import of
    ``anymal.testing`` (``plugin_type: toy`` in configs then resolves to it).

    Raw inputs: a 1-D tensor, NumPy array or tuple of ``input_dim`` finite numbers; a path to a text file of
    ``input_dim`` whitespace-separated numbers (:func:`write_toy_input` writes one); or that file's bytes.
    """

    name = "toy"
    config_class = ToyPluginConfig
    noun = "toy signal"
    config: ToyPluginConfig

    def build_encoder(self) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.init_seed)
            return nn.Linear(self.config.input_dim, self.config.feature_dim)

    def encoder_key(self) -> str | None:
        cfg = self.config
        return f"toy:{cfg.input_dim}:{cfg.feature_dim}:{cfg.init_seed}"

    def encode(self, encoder: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return encoder(batch)

    def build_projector(self, llm_dim: int) -> nn.Module:
        return ToyProjector(self.config.feature_dim, llm_dim, self.config.num_tokens)

    def preprocess(self, raw: Any) -> torch.Tensor:
        where = "toy input"
        if isinstance(raw, (str, os.PathLike)):
            path = Path(raw)
            where = f"toy input file {path}"
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise InputError(f"{where}: cannot read it ({exc.strerror or exc})") from exc
        if isinstance(raw, (bytes, bytearray)):
            try:
                raw = tuple(float(word) for word in bytes(raw).decode("utf-8").split())
            except (UnicodeDecodeError, ValueError) as exc:
                raise InputError(f"{where}: expected whitespace-separated numbers ({exc})") from exc
        if isinstance(raw, torch.Tensor) or hasattr(raw, "__array__") or isinstance(raw, tuple):
            try:
                vector = torch.as_tensor(raw, dtype=torch.float32)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise InputError(f"{where}: cannot be read as numbers ({exc})") from exc
        else:
            raise InputError(
                f"{where}: expected a path, bytes, a tensor, an array or a tuple of numbers, got {type(raw).__name__}"
            )
        if tuple(vector.shape) != (self.config.input_dim,):
            raise InputError(f"{where}: expected {self.config.input_dim} numbers, got shape {tuple(vector.shape)}")
        if not bool(torch.isfinite(vector).all()):
            raise InputError(f"{where}: holds NaN or infinite values")
        return vector.detach().clone()

    def is_single_input(self, raw: Any) -> bool:
        """One input unless ``raw`` is a list (a tuple of numbers is one vector)."""
        return not isinstance(raw, list)

    @classmethod
    def tiny_config(cls) -> ToyPluginConfig:
        return ToyPluginConfig()

    def example_inputs(self) -> list[Any]:
        generator = torch.Generator().manual_seed(0)
        first, second = torch.randn(2, self.config.input_dim, generator=generator)
        return [first, tuple(second.tolist())]

    def bad_inputs(self) -> list[Any]:
        return [
            object(),
            "/nonexistent/anymal-missing-toy.txt",
            b"not numbers",
            torch.zeros(self.config.input_dim + 1),
            torch.full((self.config.input_dim,), float("nan")),
        ]


def write_toy_input(path: str | os.PathLike, vector: Any) -> Path:
    """Writes one ``toy`` plugin input file (numbers separated by spaces) and returns its path."""
    path = Path(path)
    path.write_text(" ".join(repr(float(x)) for x in torch.as_tensor(vector).reshape(-1).tolist()) + "\n")
    return path


register_plugin(ToyPlugin)


# --- contract test kit -------------------------------------------------------------------------------------------
def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _seeded(build, seed: int = 0):
    """``build()`` under a fixed torch seed, leaving the caller's random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _check_rebuilds_identically(module: nn.Module, rebuilt: nn.Module | None, message: str) -> None:
    """Building twice from one config must give the same weights (a checkpoint records their fingerprint)."""
    _check(rebuilt is not None and fingerprint_module(module) == fingerprint_module(rebuilt), message)


def _trainable_params(module: nn.Module, message: str) -> list[nn.Parameter]:
    params = list(module.parameters())
    _check(bool(params) and all(p.requires_grad for p in params), message)
    return params


def _reloaded(module: nn.Module, build):
    """A fresh ``build()`` (under another seed) given ``module``'s state through safetensors bytes."""
    from safetensors.torch import load, save

    blob = save({k: v.contiguous() for k, v in module.state_dict().items()})
    reloaded = _seeded(build, seed=1)
    reloaded.load_state_dict(load(blob))
    return reloaded


def _check_rejects(call, bads: Iterable[Any], error: type[Exception], what: str, method: str) -> None:
    """Every bad value must raise ``error`` from ``call``: not be accepted, not crash with another type."""
    for bad in bads:
        try:
            call(bad)
        except error:
            continue
        except Exception as exc:
            raise AssertionError(f"{what} {bad!r:.60} raised {type(exc).__name__}, not {error.__name__}") from exc
        raise AssertionError(f"{what} {bad!r:.60} was accepted; {method} must raise {error.__name__}")


def check_plugin_contract(plugin: str | type[ModalityPlugin], llm_dim: int = 32, atol: float = 1e-5) -> None:
    """Runs one plugin through the contract the core relies on; raises ``AssertionError`` naming what failed.

    Checks: config round trip; deterministic encoder; shapes and dtypes; frozen encoder / trainable projector;
    projector save/load round trip (bit-exact); batch-vs-single parity; bad inputs raise ``InputError``.
    """

    from anymal.llm import freeze

    cls = get_plugin(plugin) if isinstance(plugin, str) else plugin
    name = cls.name
    config = cls.tiny_config()
    _check(isinstance(config, cls.config_class), f"{name}: tiny_config() is not a {cls.config_class.__name__}")
    again = config_from_dict(cls.config_class, json.loads(json.dumps(config_to_dict(config))), name)
    _check(again == config, f"{name}: config does not survive a JSON round trip")
    instance = cls(config)

    encoder = freeze(instance.build_encoder())
    _check_rebuilds_identically(
        encoder,
        cls(config).build_encoder(),
        f"{name}: building the encoder twice from the same config gives different weights (seed the init)",
    )
    projector = _seeded(lambda: instance.build_projector(llm_dim))
    params = _trainable_params(projector, f"{name}: projector parameters must be trainable")

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
        reloaded = _reloaded(projector, lambda: instance.build_projector(llm_dim))
        again_tokens = instance.project(reloaded, feats)
        _check(torch.equal(again_tokens, tokens.detach()), f"{name}: projector save/load round trip is not bit-exact")

    _check_rejects(instance.preprocess, instance.bad_inputs(), InputError, f"{name}: bad input", "preprocess")


# --- golden manifests ----------------------------------------------------------------------------------------------
def plugin_manifest(plugin: str | type[ModalityPlugin], llm_dim: int = 32, seed: int = 0) -> dict[str, Any]:
    """What a plugin's ``tiny_config()`` builds, for a committed golden file that catches silent changes.

    The projector's parameter names and shapes, the encoder's parameter count, and the mean and standard deviation
    of the projector's output (float32, CPU) when the projector is built after ``torch.manual_seed(seed)`` and fed
    features drawn from a generator seeded with ``seed``, shaped like the encoder's features of the plugin's first
    two example inputs (so the statistic does not depend on which example files are present).
    """
    cls = get_plugin(plugin) if isinstance(plugin, str) else plugin
    instance = cls(cls.tiny_config())
    encoder = instance.build_encoder().eval()
    with torch.no_grad():
        items = [instance.preprocess(raw) for raw in instance.example_inputs()[:2]]
        feats = instance.encode(encoder, instance.collate(items))
    generator = torch.Generator().manual_seed(seed)

    def seeded(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: seeded(value[key]) for key in sorted(value)}
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return torch.randn(value.shape, generator=generator, dtype=torch.float32)
        return value

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        projector = instance.build_projector(llm_dim).float().eval()
    with torch.no_grad():
        out = instance.project(projector, seeded(feats)).float()
    return {
        "plugin": cls.name,
        "config": "tiny_config()",
        "llm_dim": llm_dim,
        "seed": seed,
        "encoder_parameters": sum(p.numel() for p in encoder.parameters()),
        "projector": {name: list(p.shape) for name, p in projector.state_dict().items()},
        "output": {
            "shape": list(out.shape),
            "mean": round(out.mean().item(), 6),
            "std": round(out.std().item(), 6),
        },
    }


def manifest_differences(actual: Mapping[str, Any], golden: Mapping[str, Any], atol: float = 1e-4) -> list[str]:
    """Where ``actual`` (from :func:`plugin_manifest`) differs from ``golden``: exact for names, shapes and counts,
    within ``atol`` for the output statistics. An empty list means they match."""
    problems = []
    for key in sorted(set(actual) | set(golden)):
        if key == "output" or actual.get(key) == golden.get(key):
            continue
        if key == "projector":
            a, g = actual.get(key) or {}, golden.get(key) or {}
            problems += [f"projector parameter {n} is new: {a[n]}" for n in sorted(set(a) - set(g))]
            problems += [f"projector parameter {n} is gone (was {g[n]})" for n in sorted(set(g) - set(a))]
            problems += [
                f"projector parameter {n}: shape {a[n]}, golden {g[n]}" for n in sorted(a) if n in g and a[n] != g[n]
            ]
            continue
        problems.append(f"{key}: {actual.get(key)!r}, golden {golden.get(key)!r}")
    a_out, g_out = actual.get("output") or {}, golden.get("output") or {}
    if a_out.get("shape") != g_out.get("shape"):
        problems.append(f"output shape {a_out.get('shape')}, golden {g_out.get('shape')}")
    for stat in ("mean", "std"):
        a_val, g_val = a_out.get(stat), g_out.get(stat)
        if a_val is None or g_val is None or abs(a_val - g_val) > atol:
            problems.append(f"output {stat} {a_val}, golden {g_val} (tolerance {atol})")
    return problems


# --- output plugin contract kit -------------------------------------------------------------------------------
def check_output_plugin_contract(plugin: str | type[OutputPlugin], llm_dim: int = 32, atol: float = 1e-5) -> None:
    """Runs one output plugin through the contract the core relies on; raises ``AssertionError`` naming what failed.

    Checks: config JSON round trip; trigger tokens and an output field; a trainable head (and a frozen module, if
    any, rebuilt bit for bit); prepare/collate of the example rows; forward on one state per label; finite named
    loss terms whose gradient reaches the head and never the frozen module; one decoded value per row; a batch of
    rows without any trigger (N = 0) at inference; batch-vs-single parity; head save/load round trip (bit-exact);
    bad labels raise an ``AnyMALError``; for the memory planner, ``architecture_config()`` builds modules with the
    real build's parameter counts on the meta device and ``planned_workspace_bytes`` does not shrink with rows.
    """

    from anymal.errors import AnyMALError
    from anymal.llm import freeze
    from anymal.output_plugin import TriggerStates
    from anymal.registry import get_output_plugin

    cls = get_output_plugin(plugin) if isinstance(plugin, str) else plugin
    name = cls.name
    config = cls.tiny_config()
    _check(isinstance(config, cls.config_class), f"{name}: tiny_config() is not a {cls.config_class.__name__}")
    again = config_from_dict(cls.config_class, json.loads(json.dumps(config_to_dict(config))), name)
    _check(again == config, f"{name}: config does not survive a JSON round trip")
    instance = cls(config)
    _check(bool(instance.tokens), f"{name}: no trigger tokens (set default_tokens or config.tokens)")
    _check(bool(cls.output_field), f"{name}: output_field is empty (the GenerateOutput attribute, e.g. 'boxes')")

    frozen = instance.build_frozen()
    if frozen is not None:
        frozen = freeze(frozen)
        _check_rebuilds_identically(
            frozen,
            cls(config).build_frozen(),
            f"{name}: building the frozen module twice from the same config gives different weights (seed it)",
        )
    head = _seeded(lambda: instance.build_head(llm_dim))
    params = _trainable_params(head, f"{name}: head parameters must be trainable")
    _check_plannable(cls, instance, head, frozen, llm_dim)

    rows = instance.example_rows()
    _check(len(rows) >= 2, f"{name}: example_rows() must give at least two rows")
    counts = [len(labels) for _, labels in rows]
    _check(sum(counts) >= 1, f"{name}: example_rows() hold no labels")
    batch = instance.collate([instance.prepare(row, labels) for row, labels in rows])
    generator = torch.Generator().manual_seed(0)
    states = TriggerStates(
        states=torch.randn(sum(counts), llm_dim, generator=generator).requires_grad_(True),
        rows=torch.repeat_interleave(torch.arange(len(rows)), torch.tensor(counts)),
        token=torch.zeros(sum(counts), dtype=torch.long),
        counts=counts,
    )
    outputs = instance.forward(head, frozen, states, batch)
    losses = instance.loss(outputs, states, batch)
    _check(bool(losses), f"{name}: loss() returned no terms for labelled rows")
    for term, value in losses.items():
        _check(
            isinstance(value, torch.Tensor) and value.dim() == 0 and bool(torch.isfinite(value)),
            f"{name}: loss term {term!r} is not a finite scalar tensor",
        )
    torch.stack(list(losses.values())).sum().backward()
    _check(any(p.grad is not None for p in params), f"{name}: the loss gives the head no gradient")
    if frozen is not None:
        _check(all(p.grad is None for p in frozen.parameters()), f"{name}: the frozen module received gradients")
    values = instance.decode(outputs, states, batch)
    _check(len(values) == len(rows), f"{name}: decode() gave {len(values)} values for {len(rows)} rows")

    with torch.no_grad():
        bare = instance.collate([instance.prepare(row, None) for row, _ in rows])
        empty = TriggerStates(
            torch.zeros(0, llm_dim), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), [0] * len(rows)
        )
        values = instance.decode(instance.forward(head, frozen, empty, bare), empty, bare)
        _check(len(values) == len(rows), f"{name}: with no triggers decode() must still give one value per row")

        first = instance.collate([instance.prepare(rows[0][0], rows[0][1])])
        alone = TriggerStates(
            states.states[: counts[0]].detach(), states.rows[: counts[0]], states.token[: counts[0]], [counts[0]]
        )
        single = instance.forward(head, frozen, alone, first)
        batched = instance.forward(head, frozen, states, batch)
        if isinstance(single, torch.Tensor):
            _check(
                torch.allclose(single, batched[: counts[0]], atol=atol, rtol=1e-4),
                f"{name}: row 0 decodes differently alone than in a batch",
            )
        reloaded = _reloaded(head, lambda: instance.build_head(llm_dim))
        again_out = instance.forward(reloaded, frozen, states, batch)
        if isinstance(again_out, torch.Tensor):
            _check(torch.equal(again_out, batched), f"{name}: head save/load round trip is not bit-exact")

    row, labels = rows[0]
    _check_rejects(
        lambda bad: instance.prepare(row, [bad, *labels[1:]]),
        instance.bad_labels(),
        AnyMALError,
        f"{name}: bad label",
        "prepare",
    )


def _check_plannable(cls: type[OutputPlugin], instance: OutputPlugin, head: nn.Module, frozen, llm_dim: int) -> None:
    """The memory planner builds the plugin from ``architecture_config()`` on the meta device and asks
    ``planned_workspace_bytes``: both must work offline and count what the real build holds."""
    from anymal.plan.from_train import meta_device

    name = cls.name
    architecture = instance.architecture_config()
    _check(
        isinstance(architecture, cls.config_class),
        f"{name}: architecture_config() is not a {cls.config_class.__name__}",
    )
    planned = cls(architecture)
    with meta_device(), torch.random.fork_rng(devices=[]):
        meta_head, meta_frozen = planned.build_head(llm_dim), planned.build_frozen()

    def numel(module: nn.Module | None) -> int:
        return 0 if module is None else sum(p.numel() for p in module.parameters())

    _check(
        numel(meta_head) == numel(head) and numel(meta_frozen) == numel(frozen),
        f"{name}: built from architecture_config() on the meta device the head/frozen module have "
        f"{numel(meta_head)}/{numel(meta_frozen)} parameters, the real build {numel(head)}/{numel(frozen)}: "
        "the memory planner would miscount this plugin",
    )
    one, four = instance.planned_workspace_bytes(1, 4), instance.planned_workspace_bytes(4, 4)
    _check(
        isinstance(one, int) and isinstance(four, int) and 0 <= one <= four,
        f"{name}: planned_workspace_bytes must be whole bytes that do not shrink with more rows (1 row: {one!r}, "
        f"4 rows: {four!r})",
    )
