"""Concurrency, stop sequences and per-request limits of the server.

Streaming and non-streaming requests with different sampling settings share one batched ``generate`` call; each
row samples with its own settings and seed and ends on its own, so a slow reader, a client that leaves or a bad
request never holds up or breaks the others.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from serve_helpers import Scripted, running  # noqa: E402

from anymal.testing import require_asset  # noqa: E402
from anymal_serve import ServerSettings, create_app  # noqa: E402
from anymal_serve.limits import Limits  # noqa: E402
from anymal_serve.rows import Row  # noqa: E402

SCRIPT = "One two three. Four five six. Seven eight nine. Ten eleven twelve."


@pytest.fixture(scope="module")
def model(saved_model):
    return saved_model[0]


def _client(url, timeout=60):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=timeout)


def _user(text="Say something."):
    return [{"role": "user", "content": text}]


def _text(result):
    return result.choices[0].message.content


def _together(calls):
    """Runs the callables at once in threads; returns their results (or exceptions) in order."""
    out: list = [None] * len(calls)

    def run(i):
        try:
            out[i] = calls[i]()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def _streamed(client, messages, **kwargs):
    stream = client.chat.completions.create(model="anymal", messages=messages, stream=True, **kwargs)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_per_request_sampling_and_streams_share_one_batch(model):
    app = create_app(model, ServerSettings(batch_wait_ms=400, max_batch=8))
    engine = app.app.state.engine
    with running(app) as url:
        client = _client(url)

        def ask(**kwargs):
            return _text(client.chat.completions.create(model="anymal", messages=_user(), max_tokens=8, **kwargs))

        def greedy():
            return ask(temperature=0)

        def seeded():
            return ask(temperature=1.5, top_p=0.95, seed=7)

        def streamed():
            return _streamed(client, _user(), max_tokens=8, temperature=0)

        engine.batch_wait_s = 0.0
        alone = [greedy(), seeded(), streamed()]
        engine.batch_wait_s = 0.4
        calls = engine.generate_calls
        together = _together([greedy, seeded, streamed, seeded])
    assert engine.generate_calls - calls < 4  # stream and non-stream, greedy and sampled, in shared calls
    assert max(engine.batch_sizes) >= 2
    assert together[0] == alone[0] == alone[2] == together[2]  # greedy, streamed or not, alone or batched
    assert together[1] == together[3] == alone[1]  # one seed, one answer, whoever shares the batch
    assert alone[1] != alone[0]  # and that answer was sampled (temperature 1.5), not greedy


def test_stop_sequences_cut_the_answer(model):
    scripted = Scripted(model, SCRIPT)
    with running(create_app(scripted)) as url:
        client = _client(url)

        def ask(**kwargs):
            return client.chat.completions.create(model="anymal", messages=_user(), max_tokens=60, **kwargs)

        full = ask()
        cut = ask(stop=["five", "eight"])
        streamed = _streamed(client, _user(), max_tokens=60, stop="eight")
        never = ask(stop=["twenty"])
        with pytest.raises(openai.BadRequestError) as info:
            ask(stop=["a", "b", "c", "d", "e"])
    assert _text(full) == scripted.text
    assert _text(cut) == " One two three. Four " and cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < full.usage.completion_tokens  # generation stopped there
    assert streamed == " One two three. Four five six. Seven "
    assert _text(never) == scripted.text
    assert info.value.body["param"] == "stop"


def test_row_holds_back_a_possible_stop_string_across_tokens():
    pieces = []
    vocab = {1: "ab", 2: "c", 3: "XY", 4: "Zd", 5: "e"}
    row = Row(max_tokens=10, eos={0}, decode=lambda ts: "".join(vocab[t] for t in ts), stop=["XYZ"], sink=pieces.append)
    for token in (1, 2, 3):
        row.add(token)
    assert pieces == ["ab", "c"]  # "XY" may begin "XYZ": held back
    row.add(4)
    assert row.done and row.finish_reason == "stop" and "".join(pieces) == "abc"
    row.add(5)  # ignored once ended
    assert row.completion().text == "abc" and row.completion().tokens == [1, 2, 3, 4]


def test_a_slow_reader_and_a_client_that_leaves_hold_up_no_one(model):
    scripted = Scripted(model, SCRIPT * 2, delay_s=0.01)  # about 1 s of tokens per full answer
    app = create_app(scripted, ServerSettings(batch_wait_ms=300))
    with running(app) as url:
        client = _client(url)
        timings: dict = {}

        def slow_reader():
            stream = client.chat.completions.create(model="anymal", messages=_user(), max_tokens=200, stream=True)
            text = ""
            for chunk in stream:
                time.sleep(0.03)  # reads far slower than the model writes
                text += chunk.choices[0].delta.content or "" if chunk.choices else ""
            return text

        def leaver():
            stream = client.chat.completions.create(model="anymal", messages=_user(), max_tokens=200, stream=True)
            for i, _ in enumerate(stream):
                if i == 3:
                    stream.close()  # the client goes away mid-answer
                    return "left"
            return "finished"

        def quick():
            start = time.monotonic()
            result = client.chat.completions.create(model="anymal", messages=_user(), max_tokens=5)
            timings["quick"] = time.monotonic() - start
            return _text(result)

        start = time.monotonic()
        slow, left, short = _together([slow_reader, leaver, quick])
        timings["all"] = time.monotonic() - start
    assert slow == scripted.text  # every piece arrived, however slowly it was read
    assert left == "left"
    assert short == scripted.inner.tokenizer.decode(scripted.script[:5])
    assert timings["quick"] < timings["all"] / 2  # answered when its row ended, not when the batch did


def _data_url(path, mime):
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def test_per_request_limits_name_the_part(model):
    limits = Limits(max_pixels=10_000, max_audio_seconds=1.0, max_video_seconds=0.5, max_imu_samples=50, max_tokens=16)
    with running(create_app(model, ServerSettings(limits=limits))) as url:
        client = _client(url)

        def refused(*parts, **kwargs):
            content = [{"type": "text", "text": "Look:"}, *parts]
            with pytest.raises(openai.BadRequestError) as info:
                client.chat.completions.create(
                    model="anymal", messages=[{"role": "user", "content": content}], **{"max_tokens": 4, **kwargs}
                )
            return info.value.body

        image = {
            "type": "image_url",
            "image_url": {"url": _data_url(require_asset("images/grace_hopper.jpg"), "image/jpeg")},
        }
        error = refused(image)
        assert error["code"] == "image_too_large" and error["param"] == "messages[0].content[1]"
        assert "10000" in error["message"]
        wav = base64.b64encode(require_asset("audio/esc50_1-100032-A-0.wav").read_bytes()).decode()
        error = refused({"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}})
        assert error["code"] == "audio_too_long" and error["param"] == "messages[0].content[1]"
        video = {
            "type": "video_url",
            "video_url": {"url": _data_url(require_asset("video/nasa_13013.mp4"), "video/mp4")},
        }
        assert refused(video)["code"] == "video_too_long"
        imu = {"type": "input_imu", "input_imu": {"samples": np.zeros((60, 6)).tolist(), "rate": 50}}
        assert refused(imu)["code"] == "imu_too_long"
        assert refused(max_tokens=17)["code"] == "max_tokens_too_large"
        ok = client.chat.completions.create(model="anymal", messages=_user(), max_tokens=16)
        assert ok.usage.completion_tokens <= 16


def test_the_command_line_sets_the_limits(monkeypatch, saved_model):
    import uvicorn

    from anymal_serve.cli import main

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: seen.update(app=app, port=port))
    folder = str(saved_model[1])
    assert main(["--model", folder, "--port", "8123", "--max-pixels", "100", "--max-tokens", "9"]) == 0
    engine = seen["app"].app.state.engine
    assert seen["port"] == 8123 and engine.model.plugins
    from fastapi.testclient import TestClient

    with TestClient(seen["app"]) as http:
        response = http.post("/v1/chat/completions", json={"messages": _user(), "max_tokens": 10})
    assert response.status_code == 400 and response.json()["error"]["code"] == "max_tokens_too_large"


def _send_and_leave(url, body, after_s):
    """Sends a chat request over a raw socket and closes the connection ``after_s`` later, unanswered."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
        time.sleep(after_s)


class _PassAll:  # an output classifier that passes everything: streams then release whole sentences only
    name = "pass"

    def check(self, kind, value):
        return None


def _wait_idle(engine, limit_s):
    start = time.monotonic()
    while engine._pending and time.monotonic() - start < limit_s:
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_client_that_leaves_before_its_answer_costs_nothing_more(model):
    scripted = Scripted(model, "word " * 60, delay_s=0.04)  # a full answer takes about 2.4 s; no sentence ends
    app = create_app(scripted, ServerSettings(max_batch=1, safety=[_PassAll()]))
    engine = app.app.state.engine
    body = {"messages": _user(), "max_tokens": 100}
    with running(app) as url:
        client = _client(url)
        calls = engine.generate_calls
        first = threading.Thread(target=lambda: client.chat.completions.create(model="anymal", **body))
        first.start()
        time.sleep(0.2)
        _send_and_leave(url, body, after_s=0.5)  # queued behind the first, gone before its turn
        first.join(30)
        _wait_idle(engine, 5)
        assert engine.dropped == 1 and engine.generate_calls == calls + 1  # the left request never ran
        # a stream that leaves while waiting for its first sentence: its row ends at the next token
        start = time.monotonic()
        _send_and_leave(url, {**body, "stream": True}, after_s=0.4)
        idle = 0.4 + _wait_idle(engine, 5)
    assert idle < 1.6, f"the row ran on for {idle:.2f} s after its client left (a full answer takes about 2.4 s)"
    assert time.monotonic() - start < 5
