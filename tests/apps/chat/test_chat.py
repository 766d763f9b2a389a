"""``python -m anymal.chat``: the terminal chat, driven through its stdin in a real process, and in-process."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from anymal.testing import require_asset, tiny_anymal


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat_model")
    model = tiny_anymal(("image", "imu", "video"), apply_chat_template=True)
    model.save_pretrained(folder)
    from anymal_serve.engine import load_model

    return load_model(str(folder)), folder


def _imu_csv(folder, rows=120):
    samples = np.random.default_rng(0).normal(size=(rows, 6)).astype(np.float32)
    path = folder / "walk.csv"
    np.savetxt(path, samples, delimiter=",")
    return path, np.loadtxt(path, delimiter=",", ndmin=2).astype(np.float32)


@pytest.mark.integration  # a real process: torch and the model load again (~10-20 s on 2 busy cores)
def test_chat_over_stdin_in_a_real_process(saved, tmp_path):
    model, folder = saved
    image = require_asset("images/grace_hopper.jpg")
    imu_path, samples = _imu_csv(tmp_path)
    script = "\n".join(
        [
            f"/image {image}",
            f"/imu {imu_path} 50",
            "Describe this.",
            f"/audio {image}",  # the model has no audio modality
            f"/video {tmp_path / 'missing.mp4'}",
            "/imu only-a-path",
            "/quit",
            "never sent",
        ]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "anymal.chat", "--model", str(folder), "--max-tokens", "6"],
        input=script,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    expected = model.generate(
        "<image><imu>Describe this.", image=str(image), imu=(samples, 50.0), max_new_tokens=6, do_sample=False
    ).text
    assert f"[image attached: {image}]" in lines and f"[imu attached: {imu_path}]" in lines
    # the streamed answer, on its own line, the same as the library's generate
    assert expected in lines, f"expected {expected!r} in:\n{done.stdout}\n{done.stderr[-3000:]}"
    assert any(line.startswith("error: this model has no audio modality") for line in lines)
    assert any("no such file" in line and "missing.mp4" in line for line in lines)
    assert "error: usage: /imu PATH RATE" in lines
    assert "never sent" not in done.stdout


def test_chat_commands_history_and_reset(saved, tmp_path, monkeypatch, capsys):
    """The same chat in-process (stdin a StringIO): attachments, typed errors, history, /reset."""
    from anymal_serve import chat

    model, folder = saved
    monkeypatch.setattr("anymal_serve.engine.load_model", lambda path: model)
    image = require_asset("images/grace_hopper.jpg")
    imu_path, samples = _imu_csv(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n")
    lines = [f"/image {image}", f"/imu {imu_path} 50", "Hello.", f"/imu {bad} 50", "/smell x", "Again.", "/reset"]
    stdin = io.StringIO("\n".join([*lines, "Hello.", ""]))
    assert chat.run(["--model", str(folder), "--max-tokens", "4"], stdin=stdin) == 0
    out = capsys.readouterr().out.splitlines()
    with_inputs = model.generate(
        "<image><imu>Hello.", image=str(image), imu=(samples, 50.0), max_new_tokens=4, do_sample=False
    ).text
    history = [
        {"role": "user", "content": "<image><imu>Hello."},
        {"role": "assistant", "content": with_inputs},
        {"role": "user", "content": "Again."},
    ]
    text = model.tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    ids = list(model.prompt_encoder.tokenize_text(text))
    second = model.generate(
        input_ids=[ids], image=str(image), imu=(samples, 50.0), max_new_tokens=4, do_sample=False
    ).text
    plain = model.generate("Hello.", max_new_tokens=4, do_sample=False).text
    assert out[1:4] == [f"[image attached: {image}]", f"[imu attached: {imu_path}]", with_inputs]
    assert "expected [T, 6] rows" in out[4]  # the bad IMU file is refused; the next turn goes on without it
    assert out[5].startswith("error: unknown command /smell")
    assert out[6] == second  # the second turn saw the first, and its inputs, through the chat template
    assert out[7:] == ["[conversation cleared]", plain]


def test_python_dash_m_anymal_serve_shows_help():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "anymal.serve", "--help"], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "--safety" in done.stdout and "python -m anymal.serve" in done.stdout
