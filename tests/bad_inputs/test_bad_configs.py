"""Bad training configs: a ConfigError naming the key, and ``--dry-run`` exits 2 before any model is built.

``--dry-run`` runs ``load_train_config`` (types, unknown keys, every numeric range) and ``preflight`` (data files,
``init_from`` checkpoints, ``train_modalities`` and data modalities against the model's plugins), so a config it
passes does not fail on any of them once the model is loaded. The property tests at the end fuzz the loader.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest
import yaml

import anymal.testing  # noqa: F401  (registers the toy plugin that the configs name)
from anymal import ConfigError
from anymal.config import merge_overrides
from anymal.train.__main__ import main as cli_main
from anymal.train.config import load_train_config, preflight
from bad_inputs.conftest import expect_error

MODEL = ["model.llm.name_or_path=/nowhere/llm", "model.modalities.toy={}"]


@pytest.fixture
def data_file(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"toy": "a.txt", "caption": "a toy"}\n')
    return path


@pytest.fixture
def good(data_file) -> list[str]:
    """Overrides of a config that passes --dry-run (the data file exists, the model is never built)."""
    return [*MODEL, f"data=[{{kind: pairs, path: {data_file}, modality: toy}}]", "output_dir=/tmp/anymal-bad-configs"]


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if anything builds an AnyMAL (--dry-run must answer before any model loads)."""
    from anymal.modeling import AnyMAL

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(AnyMAL, "__init__", refuse)


# --- numeric ranges and choices (load_train_config) -------------------------------------------------------------
RANGE_CASES = [
    ("lr=-1e-4", r"lr=-0\.0001"),
    ("lr=0", r"lr=0"),
    ("lr=nan", "lr=nan.*finite"),
    ("lr=inf", "lr=inf.*finite"),
    ("log_every=0", "log_every=0"),
    ("warmup_steps=-5", "warmup_steps=-5"),
    ("save_every=-1", "save_every=-1"),
    ("eval_every=-1", "eval_every=-1"),
    ("num_workers=-2", "num_workers=-2"),
    ("seed=-1", "seed=-1"),
    ("weight_decay=-0.1", "weight_decay=-0.1"),
    ("max_grad_norm=-1", "max_grad_norm=-1"),
    ("max_consecutive_skips=-1", "max_consecutive_skips=-1"),
    ("module_lr.projector=-1", "module_lr.projector=-1"),
    ("lora.rank=-8", r"lora.rank=-8.*0 \(LoRA off\)"),
    ("lora.alpha=0", "lora.alpha=0"),
    ("lora.dropout=1.5", "lora.dropout=1.5"),
    ("lora.dropout=-0.1", "lora.dropout=-0.1"),
    ("lora.lr=-1", "lora.lr=-1"),
    ("data.0.kind=webdataset", r"data.0.*kind='webdataset'.*pairs, llava, m3it, conversations"),
    ("data.0.weight=0", r"data.0.*weight=0"),
    ("data.0.weight=-2", r"data.0.*weight=-2"),
    ("data.0.path=", r"data.0.path"),
    ("on_error=ignore", "on_error='ignore'"),
    ("train_modalities=[toy,toy]", "train_modalities.*twice"),
]


@pytest.mark.parametrize(("override", "pattern"), RANGE_CASES, ids=[c[0] for c in RANGE_CASES])
def test_out_of_range_value(good, override, pattern):
    expect_error(lambda: load_train_config(None, [*good, override]), ConfigError, pattern)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("lr={x", r"override 'lr=\{x'.*not valid YAML"),
        ("seed=%", r"override 'seed=%'.*not valid YAML"),
        ("model.modalities=[toy]", "model.modalities: expected a mapping"),
        ("model.modalities.toy=3", "model.modalities.toy: expected a mapping"),
    ],
)
def test_malformed_override(good, override, pattern):
    base = [o for o in good if not o.startswith("model.modalities")]
    expect_error(lambda: load_train_config(None, [*base, override]), ConfigError, pattern)


def test_malformed_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr: [1, 2\nmax_steps: 3\n")
    expect_error(lambda: load_train_config(path), ConfigError, "bad.yaml", "not valid YAML")


# --- preflight: what used to fail only after the model was built --------------------------------------------------
PREFLIGHT_CASES = [
    ("train_modalities=[image]", r"train_modalities: unknown \['image'\].*toy"),
    ("data.0.modality=audio", r"data.0.modality='audio'.*toy"),
    ("data.0.modality=null", r"data.0.modality: kind 'pairs' needs"),
    ("data.0.path=/nowhere/pairs.jsonl", r"data.0.path: /nowhere/pairs.jsonl: no such data file"),
    ("data.0.media_root=/nowhere/media", r"data.0.media_root: /nowhere/media"),
    ("data.0.kind=llava", r"data.0.modality='image' \(kind llava\)"),
    ("init_from=/nowhere/ckpt", r"init_from: /nowhere/ckpt"),
]


@pytest.mark.parametrize(("override", "pattern"), PREFLIGHT_CASES, ids=[c[0] for c in PREFLIGHT_CASES])
def test_preflight(good, override, pattern):
    overrides = [*good, override]
    if override.startswith("init_from"):
        overrides = [o for o in overrides if not o.startswith("model.")]
    expect_error(lambda: preflight(load_train_config(None, overrides)), ConfigError, pattern)


def test_eval_data_is_checked_too(good):
    config = load_train_config(None, [*good, "eval_data=[{kind: pairs, path: /nowhere/eval.jsonl, modality: toy}]"])
    expect_error(lambda: preflight(config), ConfigError, r"eval_data.0.path")


def test_output_dir_that_is_a_file(good, data_file):
    config = load_train_config(None, [*good, f"output_dir={data_file}"])
    expect_error(lambda: preflight(config), ConfigError, "output_dir", "not a folder")


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory):
    from anymal.testing import tiny_anymal

    folder = tmp_path_factory.mktemp("init") / "toy_ckpt"
    tiny_anymal(("toy",)).save_pretrained(folder, save_tokenizer=False)
    return folder


def test_train_modalities_against_an_init_from_checkpoint(good, toy_checkpoint, no_model):
    """With init_from the checkpoint's plugin list is read from its files; no model is built."""
    overrides = [o for o in good if not o.startswith("model.")] + [f"init_from={toy_checkpoint}"]
    assert preflight(load_train_config(None, overrides)) is None
    expect_error(
        lambda: preflight(load_train_config(None, [*overrides, "train_modalities=[imu]"])),
        ConfigError,
        r"train_modalities: unknown \['imu'\]; the model's modalities are: toy",
    )


# --- python -m anymal.train --dry-run ------------------------------------------------------------------------------
def _dry_run(overrides: list[str], capsys) -> tuple[int, str, str]:
    code = cli_main(["--dry-run", *overrides])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dry_run_passes_a_good_config(good, capsys, no_model):
    code, out, _ = _dry_run(good, capsys)
    assert code == 0 and "config OK" in out


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("lr=-1", "lr=-1"),
        ("log_every=0", "log_every=0"),
        ("warmup_steps=-1", "warmup_steps=-1"),
        ("lora.rank=-4", "lora.rank=-4"),
        ("train_modalities=[depth]", "train_modalities"),
        ("data.0.kind=tfrecord", "kind='tfrecord'"),
        ("data.0.path=/nowhere/x.jsonl", "data.0.path"),
    ],
)
def test_dry_run_refuses_before_any_model_loads(good, capsys, no_model, override, key):
    code, out, err = _dry_run([*good, override], capsys)
    assert code == 2, out
    assert err.startswith("error: ") and key in err and "config OK" not in out


def test_dry_run_reads_the_yaml_file(tmp_path, data_file, capsys, no_model):
    path = tmp_path / "run.yaml"
    config = {
        "model": {"llm": {"name_or_path": "/nowhere"}, "modalities": {"toy": {}}},
        "data": [{"kind": "pairs", "path": str(data_file), "modality": "toy"}],
        "train_modalities": ["audio"],
    }
    path.write_text(yaml.safe_dump(config))
    code, _, err = _dry_run(["--config", str(path)], capsys)
    assert code == 2 and "train_modalities: unknown ['audio']" in err


# --- property-based fuzzing of the loader ------------------------------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
FUZZ = hypothesis.settings(max_examples=150, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))

KEYS = [
    "lr", "log_every", "data", "data.0", "data.0.path", "data.0.kind", "data.0.weight", "data.1.weight", "lora",
    "lora.rank", "lora.dropout", "lora.target_modules", "model", "model.llm", "model.llm.name_or_path",
    "model.modalities", "model.modalities.toy", "model.modalities.image", "model.seed", "init_from",
    "init_from.image", "train_modalities", "module_lr", "module_lr.x", "seed", "stage", "eval_data",
    "group_by_modality", "max_steps", "output_dir", "on_error", "x", "",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "1",
            "-1",
            "0",
            "nan",
            "inf",
            "1e400",
            "[]",
            "{}",
            "[1",
            "{a: 1}",
            "null",
            "${lr}",
            "${x}",
            "true",
            "[{path: a.jsonl}]",
            "'x'",
            '"',
            "a: b",
            "- 1",
            "!!python/object:os.system",
            "*a",
            "&a 1",
            "%",
            "${",
            "[a, {b: ${c}}]",
            "12345678901234567890123",
        ]
    ),
    st.text(max_size=12),
)
OVERRIDE = st.builds(lambda key, value: f"{key}={value}", st.sampled_from(KEYS), VALUES)
LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
TREE = st.recursive(
    LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner)
    ),
    max_leaves=10,
)
TOP_KEYS = ["lr", "data", "lora", "model", "init_from", "train_modalities", "seed", "stage", "module_lr", "x"]


def _validates_or_config_error(call):
    with contextlib.suppress(ConfigError):
        call()


@FUZZ
@hypothesis.given(st.lists(st.text(max_size=30), max_size=3), st.dictionaries(st.text(max_size=4), LEAF, max_size=3))
def test_fuzz_merge_overrides(overrides, layer):
    _validates_or_config_error(lambda: merge_overrides(layer, overrides=overrides))


@FUZZ
@hypothesis.given(st.lists(OVERRIDE, max_size=4))
def test_fuzz_train_overrides(overrides):
    base = ["model.llm.name_or_path=x", "data=[{kind: pairs, path: a.jsonl, modality: toy}]"]
    _validates_or_config_error(lambda: load_train_config(None, base + overrides))


@FUZZ
@hypothesis.given(st.dictionaries(st.sampled_from(TOP_KEYS), TREE, max_size=4))
def test_fuzz_train_yaml_mapping(mapping):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.yaml"
        path.write_text(yaml.safe_dump(mapping))
        _validates_or_config_error(lambda: load_train_config(path))


@FUZZ
@hypothesis.given(st.text(max_size=60))
def test_fuzz_train_yaml_text(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _validates_or_config_error(lambda: load_train_config(path))
