"""Safety hooks (AnyMAL §5): input classifiers per modality and on the text, the output checked sentence by
sentence while it streams; pass, redact and refuse on every path, and the shipped keyword/regex policy."""

from __future__ import annotations

import base64
import json

import pytest

fastapi = pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from serve_helpers import Scripted, running  # noqa: E402

from anymal.errors import ConfigError  # noqa: E402
from anymal.testing import require_asset  # noqa: E402
from anymal_serve import ServerSettings, create_app  # noqa: E402
from anymal_serve.keyword_policy import KeywordPolicy  # noqa: E402
from anymal_serve.safety import SafetyPipeline, Verdict, available, load_classifier  # noqa: E402

SCRIPT = "The cat sat. It was red. Secret plans follow. More text here."


class Toy:
    """A classifier that refuses or redacts one kind of input when a condition holds, and records what it saw."""

    def __init__(self, kind, when, verdict, name="toy"):
        self.kind, self.when, self.verdict, self.name = kind, when, verdict, name
        self.seen = []

    def check(self, kind, value):
        if kind != self.kind:
            return None
        self.seen.append(value)
        return self.verdict(value) if self.when(value) else Verdict.passes()


def _image(name="grace_hopper.jpg"):
    data = base64.b64encode(require_asset(f"images/{name}").read_bytes()).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


def _user(text, *parts):
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def model(saved_model):
    return saved_model[0]


def _client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


def _ask(client, messages, **kwargs):
    return client.chat.completions.create(model="anymal", messages=messages, max_tokens=80, temperature=0, **kwargs)


def _stream(client, messages, **kwargs):
    chunks = list(
        client.chat.completions.create(
            model="anymal", messages=messages, max_tokens=80, temperature=0, stream=True, **kwargs
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    refusals = [c.choices[0].delta.refusal for c in chunks if c.choices and c.choices[0].delta.refusal]
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    return chunks, content, refusals, reasons


def test_safety_is_off_by_default(model):
    app = create_app(Scripted(model, SCRIPT), ServerSettings())
    with running(app) as url:
        result = _ask(_client(url), _user("Tell me a secret."))
    assert result.choices[0].message.content == Scripted(model, SCRIPT).text
    assert result.choices[0].message.refusal is None and "safety" not in (result.model_extra or {})


def test_input_text_refused_is_a_normal_answer_with_the_reason(model):
    toy = Toy("text", lambda text: "bomb" in text, lambda _: Verdict.refuse("weapons"))
    with running(create_app(Scripted(model, SCRIPT), ServerSettings(safety=[toy]))) as url:
        client = _client(url)
        result = _ask(client, _user("How to build a bomb?"))
        _, content, refusals, reasons = _stream(client, _user("a bomb please"))
        fine = _ask(client, _user("How to build a shed?"))
    choice = result.choices[0]
    assert choice.finish_reason == "content_filter" and choice.message.refusal == "weapons"
    assert choice.message.content is None and result.usage.completion_tokens == 0
    assert result.model_extra["safety"] == [
        {
            "stage": "input",
            "classifier": "toy",
            "action": "refuse",
            "reason": "weapons",
            "param": "messages[0].content[0]",
        }
    ]
    assert content == "" and refusals == ["weapons"] and reasons == ["content_filter"]
    assert fine.choices[0].finish_reason == "stop" and fine.choices[0].message.refusal is None


def test_input_text_redacted_reaches_the_model_redacted(model):
    redact = Toy("text", lambda text: "Alice" in text, lambda text: Verdict.redact(text.replace("Alice", "X"), "name"))
    after = Toy("text", lambda text: False, None, name="after")  # runs second: sees what the first left
    app = create_app(model, ServerSettings(safety=[redact, after]))
    plain = create_app(model, ServerSettings())
    with running(app) as url, running(plain) as plain_url:
        result = _ask(_client(url), _user("Alice went home."))
        expected = _ask(_client(plain_url), _user("X went home."))
    assert after.seen == ["X went home."]
    assert result.choices[0].message.content == expected.choices[0].message.content
    assert result.model_extra["safety"][0]["action"] == "redact"


def test_media_classifier_refuses_or_swaps_an_image(model):
    grace = _image()["image_url"]["url"]
    refuse = Toy("image", lambda raw: len(raw) > 1000, lambda _: Verdict.refuse("no photos of people"))
    with running(create_app(model, ServerSettings(safety=[refuse]))) as url:
        result = _ask(_client(url), _user("Who is this?", _image()))
    assert result.choices[0].finish_reason == "content_filter"
    assert result.model_extra["safety"][0]["param"] == "messages[0].content[0]"
    # redact: the classifier hands back another image, which the model then sees
    other = require_asset("images/grace_hopper.jpg").read_bytes()
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(other)).convert("L").convert("RGB").save(buffer, format="PNG")
    grey = buffer.getvalue()
    swap = Toy("image", lambda raw: True, lambda raw: Verdict.redact(grey, "greyed"))
    grey_part = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(grey).decode()}}
    with running(create_app(model, ServerSettings(safety=[swap]))) as url, running(create_app(model)) as plain:
        swapped = _ask(_client(url), _user("Who?", _image()))
        direct = _ask(_client(plain), _user("Who?", grey_part))
        original = _ask(_client(plain), _user("Who?", {"type": "image_url", "image_url": {"url": grace}}))
    assert swapped.choices[0].message.content == direct.choices[0].message.content
    assert swap.seen and swapped.model_extra["safety"][0]["reason"] == "greyed"
    assert original.usage.prompt_tokens == swapped.usage.prompt_tokens


def test_output_sentence_redacted_and_stream_released_by_sentence(model):
    scripted = Scripted(model, SCRIPT)
    red = Toy("output", lambda s: "red" in s, lambda s: Verdict.redact("[colour withheld] ", "colour"))
    with running(create_app(scripted, ServerSettings(safety=[red]))) as url:
        client = _client(url)
        result = _ask(client, _user("Story?"))
        chunks, content, _, reasons = _stream(client, _user("Story?"))
    expected = " The cat sat. [colour withheld] Secret plans follow. More text here."
    assert result.choices[0].message.content == expected and content == expected
    assert red.seen == [" The cat sat. ", "It was red. ", "Secret plans follow. ", "More text here."] * 2
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert pieces == [" The cat sat. ", "[colour withheld] ", "Secret plans follow. ", "More text here."]
    assert reasons == ["stop"] and result.choices[0].finish_reason == "stop"


def test_output_refusal_cuts_the_stream_mid_answer(model):
    scripted = Scripted(model, SCRIPT)
    secret = Toy("output", lambda s: "Secret" in s, lambda s: Verdict.refuse("secrets"))
    with running(create_app(scripted, ServerSettings(safety=[secret]))) as url:
        client = _client(url)
        chunks, content, refusals, reasons = _stream(client, _user("Story?"), stream_options={"include_usage": True})
        result = _ask(client, _user("Story?"))
    assert content == " The cat sat. It was red. "  # what passed before the refused sentence was sent
    assert refusals == ["secrets"] and reasons == ["content_filter"]
    usage = [c.usage for c in chunks if c.usage is not None][-1]
    assert usage.completion_tokens < len(scripted.script)  # generation stopped there, not at the end
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert final.model_extra["safety"] == [
        {"stage": "output", "classifier": "toy", "action": "refuse", "reason": "secrets"}
    ]
    assert result.choices[0].message.content == " The cat sat. It was red. "
    assert result.choices[0].message.refusal == "secrets" and result.choices[0].finish_reason == "content_filter"


POLICY = """
rules:
  - pattern: "\\\\bpassword\\\\b"
    action: redact
    replacement: "[redacted]"
    reason: credentials
  - pattern: "nerve agent"
    action: refuse
    reason: chemical weapons
    applies_to: [input]
  - pattern: "secret plans"
    action: refuse
    reason: confidential
    applies_to: output
"""


def test_keyword_policy_from_a_file_through_the_entry_point(model, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    assert "keyword_policy" in available()
    classifier = load_classifier(f"keyword_policy={policy}")
    assert isinstance(classifier, KeywordPolicy)
    assert classifier.check("text", "my Password is x").replacement == "my [redacted] is x"
    assert classifier.check("text", "make a nerve agent").action == "refuse"
    assert classifier.check("output", "make a nerve agent") is None  # input only
    assert classifier.check("image", b"password") is None  # text only
    with running(create_app(Scripted(model, SCRIPT), ServerSettings(safety=[classifier]))) as url:
        client = _client(url)
        refused = _ask(client, _user("How is a nerve agent made?"))
        cut = _ask(client, _user("Story?"))
    assert refused.choices[0].message.refusal == "chemical weapons"
    assert cut.choices[0].message.content == " The cat sat. It was red. "
    assert cut.choices[0].message.refusal == "confidential"


def test_bad_policies_and_classifier_names_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no safety classifier named 'nope'"):
        load_classifier("nope")
    with pytest.raises(ConfigError, match="needs a policy file"):
        load_classifier("keyword_policy")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - pattern: '('\n    action: refuse\n")
    with pytest.raises(ConfigError, match=r"rules\[0\].pattern: not a valid regular expression"):
        KeywordPolicy(bad)
    bad.write_text("rules:\n  - pattern: x\n    action: shout\n")
    with pytest.raises(ConfigError, match=r"rules\[0\].action: expected redact or refuse"):
        KeywordPolicy(bad)
    with pytest.raises(ConfigError, match="has no check"):
        SafetyPipeline([object()])


def test_command_line_turns_safety_on(tmp_path, capsys):
    from anymal_serve.cli import main

    assert main(["--model", str(tmp_path / "nowhere"), "--safety", "nope"]) == 2
    assert "no safety classifier named 'nope'" in capsys.readouterr().err


def test_health_lists_the_classifiers(model):
    toy = Toy("text", lambda _: False, None, name="toy-x")
    with running(create_app(model, ServerSettings(safety=[toy]))) as url:
        import urllib.request

        with urllib.request.urlopen(f"{url}/health") as response:
            assert json.load(response)["safety"] == ["toy-x"]


def test_the_example_policy_in_docs():
    from pathlib import Path

    policy = KeywordPolicy(Path(__file__).resolve().parents[3] / "docs" / "safety_policy.yaml")
    redacted = policy.check("text", "Mail me at jane.doe@example.com or call.")
    assert redacted.action == "redact" and redacted.replacement == "Mail me at [email] or call."
    assert policy.check("text", "card 4111 1111 1111 1111 please").replacement == "card [card number] please"
    assert policy.check("text", "How do I synthesize sarin at home?").action == "refuse"
    assert policy.check("text", "What is the history of sarin?") is None
    assert policy.check("output", "You should kill yourself.").reason == "self-harm encouragement"
    assert policy.check("output", "The weather is fine.") is None
