"""Bad checkpoint folders: every malformed file is a CheckpointError naming it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from anymal import AnyMAL, CheckpointError
from anymal.testing import tiny_anymal
from bad_inputs.conftest import expect_error


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "good"
    tiny_anymal(("toy",)).save_pretrained(folder, save_tokenizer=False)
    return folder


@pytest.fixture
def ckpt(saved, tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(saved, copy)
    return copy


def _edit_json(path, change):
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)))


CASES = {
    "config_not_utf8": lambda c, b: shutil.copy(b / "config_not_utf8.json", c / "config.json"),
    "config_is_a_list": lambda c, b: shutil.copy(b / "config_list.json", c / "config.json"),
    "fingerprints_is_a_list": lambda c, b: shutil.copy(b / "config_list.json", c / "fingerprints.json"),
    "plugin_config_is_a_list": lambda c, b: shutil.copy(b / "config_list.json", c / "plugins/toy/config.json"),
    "plugin_fingerprints_not_utf8": lambda c, b: shutil.copy(
        b / "config_not_utf8.json", c / "plugins/toy/fingerprints.json"
    ),
    "modalities_not_a_list": lambda c, b: _edit_json(c / "config.json", lambda d: {**d, "modalities": {"toy": 1}}),
    "modalities_names_missing_folder": lambda c, b: _edit_json(
        c / "config.json", lambda d: {**d, "modalities": ["toy", "audio"]}
    ),
    "future_format_version": lambda c, b: _edit_json(c / "config.json", lambda d: {**d, "format_version": 99}),
    "next_format_version": lambda c, b: _edit_json(c / "config.json", lambda d: {**d, "format_version": 4}),
    "float_format_version": lambda c, b: _edit_json(c / "config.json", lambda d: {**d, "format_version": 2.0}),
    "not_an_anymal_config": lambda c, b: _edit_json(c / "config.json", lambda d: {**d, "format": "llava"}),
    "llm_section_not_a_mapping": lambda c, b: _edit_json(c / "config.json", lambda d: {**d, "llm": "llama"}),
    "encoder_fingerprint_not_a_string": lambda c, b: _edit_json(
        c / "plugins/toy/fingerprints.json", lambda d: {**d, "encoder": 5}
    ),
    "projector_truncated": lambda c, b: (c / "plugins/toy/projector.safetensors").write_bytes(b"\x00\x01"),
    "projector_missing": lambda c, b: (c / "plugins/toy/projector.safetensors").unlink(),
    "projector_nan": lambda c, b: save_file(
        {k: torch.full_like(v, float("nan")) for k, v in load_file(c / "plugins/toy/projector.safetensors").items()},
        str(c / "plugins/toy/projector.safetensors"),
    ),
    "projector_wrong_shape": lambda c, b: save_file(
        {k: torch.zeros(3, 3) for k in load_file(c / "plugins/toy/projector.safetensors")},
        str(c / "plugins/toy/projector.safetensors"),
    ),
    "projector_extra_tensor": lambda c, b: save_file(
        {**load_file(c / "plugins/toy/projector.safetensors"), "stray": torch.zeros(1)},
        str(c / "plugins/toy/projector.safetensors"),
    ),
    "plugin_config_unknown_key": lambda c, b: _edit_json(c / "plugins/toy/config.json", lambda d: {**d, "depth": 1}),
    "plugin_config_bad_type": lambda c, b: _edit_json(
        c / "plugins/toy/config.json", lambda d: {**d, "num_tokens": "four"}
    ),
    "unknown_plugin_type": lambda c, b: _edit_json(
        c / "plugins/toy/config.json", lambda d: {**d, "plugin_type": "no_such_plugin"}
    ),
    "pickle_planted_in_plugin_folder": lambda c, b: (c / "plugins/toy/extra.pkl").write_bytes(b"\x80\x04N."),
}

EXPECTED = {
    "config_not_utf8": r"config\.json: not UTF-8",
    "config_is_a_list": r"config\.json: expected a JSON dict, got list",
    "fingerprints_is_a_list": r"fingerprints\.json: expected a JSON dict, got list",
    "plugin_config_is_a_list": r"toy/config\.json: expected a JSON dict, got list",
    "plugin_fingerprints_not_utf8": r"toy/fingerprints\.json: not UTF-8",
    "modalities_not_a_list": r"modalities: expected a list of plugin names",
    "modalities_names_missing_folder": r"plugins/audio: missing",
    "future_format_version": r"format_version 99.*upgrade anymal",
    "next_format_version": r"format_version 4; this anymal .* reads 1 to 3: upgrade anymal",
    "float_format_version": r"format_version 2\.0.*upgrade anymal",
    "not_an_anymal_config": r"not an anymal config",
    "llm_section_not_a_mapping": r"llm: expected a mapping, got str",
    "encoder_fingerprint_not_a_string": r"encoder: expected a fingerprint string, got int",
    "projector_truncated": r"projector\.safetensors: corrupt safetensors",
    "projector_missing": r"projector\.safetensors: missing",
    "projector_nan": r"NaN/inf values",
    "projector_wrong_shape": r"has shape \(3, 3\), the model expects",
    "projector_extra_tensor": r"unexpected: \['stray'\]",
    "plugin_config_unknown_key": r"modalities\.toy.*depth",
    "plugin_config_bad_type": r"modalities\.toy.*num_tokens",
    "unknown_plugin_type": r"no_such_plugin",
    "pickle_planted_in_plugin_folder": r"extra\.pkl: a pickle-format file",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_checkpoint_file_is_a_checkpoint_error_naming_it(case, ckpt, bad_files):
    CASES[case](ckpt, bad_files)
    expect_error(lambda: AnyMAL.from_pretrained(ckpt), CheckpointError, EXPECTED[case])


def test_nan_in_a_lora_adapter_is_refused_naming_the_tensor(tmp_path):
    from anymal.lora import add_lora

    model = tiny_anymal(("toy",))
    model.llm = add_lora(model.llm, rank=2, target_modules=["q_proj"])
    model.save_pretrained(tmp_path / "ckpt", save_tokenizer=False)
    adapter = tmp_path / "ckpt" / "adapter" / "adapter_model.safetensors"
    weights = load_file(adapter)
    key = sorted(weights)[0]
    weights[key] = torch.full_like(weights[key], float("inf"))
    save_file(weights, str(adapter))
    expect_error(
        lambda: AnyMAL.from_pretrained(tmp_path / "ckpt"), CheckpointError, r"adapter_model\.safetensors", "NaN/inf"
    )
