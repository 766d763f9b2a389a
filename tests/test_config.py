import json

import pytest

from anymal import AnyMALConfig, ConfigError
from anymal.config import LLMConfig, QuantizationConfig, config_from_dict
from anymal_image import ImagePluginConfig


def test_json_round_trip_keeps_plugin_config_types(tmp_path):
    config = AnyMALConfig(
        llm=LLMConfig(name_or_path="meta-llama/Llama-2-7b-chat-hf", quantization=QuantizationConfig(mode="4bit")),
        modalities={"image": ImagePluginConfig(num_tokens=64)},
    )
    path = tmp_path / "config.json"
    config.save(path)
    again = AnyMALConfig.load(path)
    assert again == config
    assert isinstance(again.modalities["image"], ImagePluginConfig)


def test_yaml_is_a_partial_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("llm:\n  name_or_path: x\n  quantization: {mode: 8bit}\nmodalities:\n  image: {num_tokens: 128}\n")
    config = AnyMALConfig.load(path)
    assert config.llm.quantization.mode == "8bit"
    assert config.llm.quantization.quant_type == "nf4"  # default kept
    assert config.modalities["image"].num_tokens == 128
    assert config.modalities["image"].resampler_depth == ImagePluginConfig().resampler_depth


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"llm": {"name_or_path": "x", "quantisation": {}}}, "llm.quantisation"),
        ({"llm": {"dtype": "float64"}}, "float64"),
        ({"llm": {"quantization": {"mode": "3bit"}}}, "3bit"),
        ({"modalities": {"image": {"num_tokens": "many"}}}, "modalities.image.num_tokens"),
        ({"modalities": {"image": {"num_tokens": 0}}}, "num_tokens=0"),
        ({"modalities": {"image": {"backend": "tensorflow"}}}, "tensorflow"),
        ({"modalities": {"smell": {}}}, "unknown plugin 'smell'"),
        ({"llms": {}}, "unknown top-level config keys"),
    ],
)
def test_bad_configs_fail_with_the_field_named(data, fragment):
    with pytest.raises(ConfigError) as info:
        AnyMALConfig.from_dict(data)
    assert fragment in str(info.value)


def test_unreadable_config_file_is_named(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"broken\.json"):
        AnyMALConfig.load(path)
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        AnyMALConfig.load(tmp_path / "missing.yaml")


def test_config_from_dict_rejects_non_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        config_from_dict(QuantizationConfig, ["4bit"], "quantization")
    assert json.loads(json.dumps(AnyMALConfig().to_dict()))["llm"]["dtype"] == "float32"


def test_train_plan_and_demo_read_configs_through_one_loader():
    """One loader (YAML + key=value overrides + typed validation): the same override mistake gets the same message
    from the training, planning and demo configs."""
    from anymal.plan.config import load_plan_config
    from anymal.train import load_train_config
    from anymal_demo.settings import load_settings

    for load in (
        lambda o: load_train_config(None, o),
        lambda o: load_plan_config(None, o),
        lambda o: load_settings(True, overrides=o),
    ):
        with pytest.raises(ConfigError, match=r"overrides \['lr'\]: expected key=value"):
            load(["lr"])


def test_one_choice_validator_names_field_value_and_choices():
    from anymal.config import check_choice
    from anymal.train.config import TrainConfig

    with pytest.raises(ConfigError, match=r"stage='pretrain': expected one of align, instruct"):
        TrainConfig(stage="pretrain")
    with pytest.raises(ValueError, match=r"mode='2bit': expected one of none, 8bit, 4bit"):
        check_choice("2bit", ("none", "8bit", "4bit"), "mode", error=ValueError)


def test_overrides_index_into_lists():
    """``data.0.path=x`` replaces one field of a list entry (a dot-list merge alone would build ``{"0": ...}``)."""
    from anymal.config import merge_overrides

    base = {"data": [{"kind": "pairs", "path": "a.jsonl"}, {"kind": "llava", "path": "b.json"}], "lr": 1.0}
    merged = merge_overrides(base, overrides=["data.1.path=c.json", "lr=0.5", "data.0.weight=2"])
    assert merged == {"data": [{"kind": "pairs", "path": "a.jsonl", "weight": 2},
                               {"kind": "llava", "path": "c.json"}], "lr": 0.5}  # fmt: skip
    with pytest.raises(ConfigError, match=r"data\.2\.path=x.*list index out of range"):
        merge_overrides(base, overrides=["data.2.path=x"])
