"""The OpenAI-compatible server, driven over loopback by the official ``openai`` client.

One tiny model with the image, audio, IMU and video plugins (random weights, a chat template) is saved, loaded
back the way ``python -m anymal serve`` loads it, and served by uvicorn in a background thread.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from serve_helpers import running  # noqa: E402

from anymal.testing import require_asset  # noqa: E402
from anymal_serve import ServerSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def model(saved_model):
    return saved_model[0]  # conftest.py: the tiny model with every modality, saved and loaded back


@pytest.fixture(scope="module")
def server_app(model):
    settings = ServerSettings(model_name="tiny", max_body_bytes=2_000_000, default_max_tokens=8)
    return create_app(model, settings)


@pytest.fixture(scope="module")
def server(server_app):
    with running(server_app) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=60)


def _data_url(path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def _image_part():
    return {
        "type": "image_url",
        "image_url": {"url": _data_url(require_asset("images/grace_hopper.jpg"), "image/jpeg")},
    }


def _audio_part():
    data = base64.b64encode(require_asset("audio/esc50_1-100032-A-0.wav").read_bytes()).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def _video_part():
    return {"type": "video_url", "video_url": {"url": _data_url(require_asset("video/nasa_13013.mp4"), "video/mp4")}}


def _imu_part(n: int = 100):
    samples = np.random.default_rng(0).normal(size=(n, 6)).round(4).tolist()
    return {"type": "input_imu", "input_imu": {"samples": samples, "rate": 50}}


def _user(*parts):
    return [{"role": "user", "content": [{"type": "text", "text": "Describe: "}, *parts]}]


def _stream_text(client, messages, **kwargs):
    stream = client.chat.completions.create(
        model="tiny", messages=messages, stream=True, stream_options={"include_usage": True}, **kwargs
    )
    pieces, reasons, usage = [], [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason:
                reasons.append(choice.finish_reason)
    return "".join(pieces), reasons, usage


def test_health_and_models(server, client):
    with urllib.request.urlopen(f"{server}/health") as response:
        health = json.load(response)
    assert health["status"] == "ok" and set(health["modalities"]) == {"image", "audio", "imu", "video"}
    assert [m.id for m in client.models.list().data] == ["tiny"]


@pytest.mark.parametrize("part", ["text", "image", "audio", "imu", "video", "all"])
def test_each_part_type_stream_and_not(client, model, part):
    parts = {
        "text": [],
        "image": [_image_part()],
        "audio": [_audio_part()],
        "imu": [_imu_part()],
        "video": [_video_part()],
        "all": [_image_part(), _audio_part(), _imu_part(), _video_part()],
    }[part]
    messages = _user(*parts)
    result = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0)
    choice = result.choices[0]
    assert result.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert 1 <= result.usage.completion_tokens <= 6
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    # the same answer as the library's own generate, with the inputs in the same order
    text, reasons, usage = _stream_text(client, messages, max_tokens=6, temperature=0)
    assert text == choice.message.content
    assert reasons == [choice.finish_reason]
    assert usage.completion_tokens == result.usage.completion_tokens


def test_matches_library_generate(client, model):
    image = require_asset("images/grace_hopper.jpg").read_bytes()
    expected = model.generate(
        "Describe: <image> and <imu>",
        image=image,
        imu=(np.asarray(_imu_part()["input_imu"]["samples"], dtype=np.float32), 50.0),
        max_new_tokens=5,
        do_sample=False,
    ).text
    result = client.chat.completions.create(
        model="tiny",
        messages=_user(_image_part(), {"type": "text", "text": " and "}, _imu_part()),
        max_tokens=5,
        temperature=0,
    )
    assert result.choices[0].message.content == expected


def test_several_parts_per_message_and_history(client):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [_image_part(), {"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": "A person."},
        {"role": "user", "content": [_image_part(), _imu_part(), _imu_part(120), {"type": "text", "text": "And?"}]},
    ]
    result = client.chat.completions.create(model="tiny", messages=messages, max_tokens=4, temperature=0)
    assert result.choices[0].message.content is not None


def test_sampling_settings(client):
    result = client.chat.completions.create(
        model="tiny", messages=_user(), max_tokens=4, temperature=0.8, top_p=0.9, seed=1
    )
    assert result.usage.completion_tokens <= 4


def _bad_request(client, messages, **kwargs):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=messages, max_tokens=4, **kwargs)
    error = info.value.body
    assert set(error) >= {"message", "type", "param", "code"}, error
    assert error["type"] == "invalid_request_error"
    return error


def test_unknown_part_type_names_the_part(client):
    error = _bad_request(client, _user({"type": "input_smell", "input_smell": {}}))
    assert error["param"] == "messages[0].content[1]" and error["code"] == "unknown_part_type"
    assert "input_smell" in error["message"]


def test_malformed_and_undecodable_media(client):
    bad_b64 = {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@not base64"}}
    assert _bad_request(client, _user(bad_b64))["code"] == "invalid_base64"
    not_an_image = {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"hello").decode()},
    }
    error = _bad_request(client, _user(_imu_part(), not_an_image))
    assert error["param"] == "messages[0].content[2]" and error["code"] == "invalid_media"
    # the same in a stream: a 400 status before any chunk, not a broken stream
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=_user(not_an_image), max_tokens=4, stream=True)
    not_audio = {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(b"RIFF....").decode(), "format": "wav"},
    }
    assert _bad_request(client, _user(not_audio))["param"] == "messages[0].content[1]"
    wrong_shape = {"type": "input_imu", "input_imu": {"samples": [[1, 2, 3]], "rate": 50}}
    assert "[T, 6]" in _bad_request(client, _user(wrong_shape))["message"]
    assert _bad_request(client, _user({"type": "input_imu", "input_imu": {"samples": [[0] * 6], "rate": -1}}))
    assert _bad_request(client, _user({"type": "image_url"}))["code"] == "invalid_part"


def test_local_files_need_the_flag(client):
    path = require_asset("images/grace_hopper.jpg")
    error = _bad_request(client, _user({"type": "image_url", "image_url": {"url": f"file://{path}"}}))
    assert error["code"] == "local_files_disabled"
    error = _bad_request(client, _user({"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}))
    assert error["code"] == "unsupported_url"


def test_local_files_with_the_flag(model):
    from fastapi.testclient import TestClient

    path = require_asset("images/grace_hopper.jpg")
    app = create_app(model, ServerSettings(model_name="tiny", allow_local_files=True))
    with TestClient(app) as http:
        response = http.post(
            "/v1/chat/completions",
            json={"messages": _user({"type": "image_url", "image_url": {"url": f"file://{path}"}}), "max_tokens": 3},
        )
    assert response.status_code == 200, response.text


def test_request_errors(client, server):
    assert _bad_request(client, [{"role": "robot", "content": "hi"}])["param"] == "messages[0].role"
    assert _bad_request(client, [{"role": "assistant", "content": "hi"}])
    error = _bad_request(client, _user(), extra_body={"max_tokens": 4000})  # under the limit, past the context
    assert error["code"] == "context_length_exceeded"
    error = _bad_request(client, _user(), extra_body={"max_tokens": 100_000})
    assert error["code"] == "max_tokens_too_large" and error["param"] == "max_tokens"
    # a literal placeholder in the text with no input behind it: anymal's InputError, as a 400
    assert _bad_request(client, [{"role": "user", "content": "look: <image>"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=_user(), max_tokens=2)
    request = urllib.request.Request(
        f"{server}/v1/chat/completions", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request)
    assert info.value.code == 400 and "error" in json.load(info.value)


def test_body_size_limit(client, server):
    big = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 2_100_000}}
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="tiny", messages=_user(big), max_tokens=2)
    assert info.value.status_code == 413
    assert info.value.body["code"] == "request_too_large"
    # still serving
    assert client.chat.completions.create(model="tiny", messages=_user(), max_tokens=2).choices


def test_concurrent_requests_all_answered(client):
    results: list = []

    def ask(i):
        stream = i % 2 == 0
        if stream:
            results.append(_stream_text(client, _user(_imu_part()), max_tokens=4, temperature=0)[0])
        else:
            results.append(
                client.chat.completions.create(model="tiny", messages=_user(_imu_part()), max_tokens=4, temperature=0)
                .choices[0]
                .message.content
            )

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 6 and len(set(results)) == 1  # greedy: one answer, whichever way it was asked


def test_queue_full_is_429(model):
    from anymal_serve.engine import Engine, Job
    from anymal_serve.errors import APIError
    from anymal_serve.parts import Conversation

    engine = Engine(model, max_queue=0)
    with pytest.raises(APIError) as info:
        engine.submit(Job([1], Conversation(), max_tokens=1))
    assert info.value.status == 429
    engine.close()


def test_concurrent_requests_are_batched_with_the_same_answers(client, server_app):
    engine = server_app.app.state.engine
    prompts = [
        _user(_imu_part()),
        _user(),
        [{"role": "user", "content": "a longer question, asked alone?"}],
        _user(_image_part(), _imu_part()),
    ]
    lengths = [4, 6, 3, 5]

    def ask(i):
        return client.chat.completions.create(model="tiny", messages=prompts[i], max_tokens=lengths[i], temperature=0)

    alone = [ask(i) for i in range(4)]
    calls = engine.generate_calls
    together: dict = {}
    _at_once(engine, [lambda i=i: together.__setitem__(i, ask(i)) for i in range(4)])
    assert engine.generate_calls - calls < 4  # at least two of them shared a generate call
    for i in range(4):
        assert together[i].choices[0].message.content == alone[i].choices[0].message.content
        assert together[i].usage.completion_tokens == alone[i].usage.completion_tokens <= lengths[i]
        assert together[i].choices[0].finish_reason == alone[i].choices[0].finish_reason


def test_a_bad_request_in_a_batch_fails_alone(client, server_app):
    engine = server_app.app.state.engine
    bad = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"nope").decode()}}
    outcomes: dict = {}

    def ask(i):
        try:
            outcomes[i] = client.chat.completions.create(
                model="tiny", messages=_user(bad) if i == 1 else _user(), max_tokens=3, temperature=0
            )
        except openai.BadRequestError as exc:
            outcomes[i] = exc

    _at_once(engine, [lambda i=i: ask(i) for i in range(3)])
    assert isinstance(outcomes[1], openai.BadRequestError)
    assert outcomes[1].body["param"] == "messages[0].content[1]"
    assert outcomes[0].choices[0].message.content == outcomes[2].choices[0].message.content


def test_command_line_help(capsys):
    from anymal.__main__ import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--allow-local-files" in capsys.readouterr().out


def test_a_failing_batched_generate_retries_each_job_alone(model):
    from anymal.errors import InputError
    from anymal_serve.engine import Engine, Job
    from anymal_serve.parts import Conversation

    class Poisoned:  # the model, but generate refuses any call holding the poisoned row
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def generate(self, input_ids, **kwargs):
            if any(row[-1] == 13 for row in input_ids):
                raise InputError("poisoned row")
            return self.inner.generate(input_ids=input_ids, **kwargs)

    engine = Engine(Poisoned(model), max_batch=8, batch_wait_s=0.5)
    try:
        rows = [[1, 50, 60], [1, 50, 13], [1, 70, 80]]
        futures = [engine.submit(Job(r, Conversation(), max_tokens=3)) for r in rows]
        assert isinstance(futures[1].exception(timeout=60), InputError)
        answers = [futures[i].result(timeout=60) for i in (0, 2)]
        assert all(1 <= len(a.tokens) <= 3 for a in answers)
        assert engine.generate_calls == 4  # the batch of three, then each alone
        assert engine._pending == 0
    finally:
        engine.close()


def _at_once(engine, calls) -> None:
    """Runs ``calls`` on threads while the engine waits 0.5 s to gather a batch, so that they share generate calls."""
    engine.batch_wait_s = 0.5
    try:
        threads = [threading.Thread(target=call) for call in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        engine.batch_wait_s = 0.01
