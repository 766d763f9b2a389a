"""Bad planner inputs: NaN/inf sizes and malformed LLM config.json files are ConfigErrors naming them."""

from __future__ import annotations

import json

import pytest

from anymal.errors import ConfigError
from anymal.plan.config import load_plan_config
from bad_inputs.conftest import expect_error

NUMBERS = [
    ("budget_gib=nan", r"budget_gib=nan: expected a finite number"),
    ("budget_gib=inf", r"budget_gib=inf: expected a finite number"),
    ("budget_gib=-1", r"budget_gib=-1.*positive"),
    ("allocator_overhead=nan", r"allocator_overhead=nan: expected a finite number"),
    ("cuda_context_gib=-inf", r"cuda_context_gib=-inf"),
    ("lora_dropout=1.5", r"lora_dropout=1.5"),
    ("micro_batch=0", r"micro_batch=0"),
]


@pytest.mark.parametrize("override, message", NUMBERS, ids=[o for o, _ in NUMBERS])
def test_bad_planner_numbers_are_named(override, message):
    expect_error(lambda: load_plan_config(None, ["llm.preset=llama2-7b", override]), ConfigError, message)


CONFIG_FILES = {
    "not_utf8": (b"\xff\xfe{", r"not UTF-8 text"),
    "a_list": (b"[1, 2]", r"holds a JSON list; expected a mapping"),
    "string_numbers": (
        json.dumps({"num_hidden_layers": "32", "hidden_size": 4096}).encode(),
        r"num_hidden_layers='32'; expected a positive integer",
    ),
    "negative_width": (json.dumps({"hidden_size": -4096}).encode(), r"hidden_size=-4096"),
    "tie_as_string": (json.dumps({"tie_word_embeddings": "yes"}).encode(), r"tie_word_embeddings='yes'; expected true"),
    "broken_json": (b'{"hidden_size": ', r"is not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FILES))
def test_bad_llm_config_json_is_named(case, tmp_path):
    content, message = CONFIG_FILES[case]
    path = tmp_path / "config.json"
    path.write_bytes(content)

    def plan():
        from anymal.plan.estimate import estimate

        return estimate(load_plan_config(None, [f"llm.config_json={path}"]))

    expect_error(plan, ConfigError, r"llm\.config_json", message)
