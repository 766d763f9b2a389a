"""Audio decoding, down-mixing and resampling: real files, PyAV containers, in-memory inputs, bad inputs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from anymal.errors import InputError
from anymal.testing import require_asset
from anymal_audio import AudioPlugin, decode_file, load_audio, prepare_waveform, to_mono


def _asset(name: str) -> Path:
    return require_asset(f"audio/{name}")


def _tone(rate: int, seconds: float, freqs=(440.0,), amplitude: float = 0.4) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (amplitude * sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)).astype(np.float32)


def _peak_frequency(signal: np.ndarray, rate: int) -> float:
    """The strongest frequency, refined by parabolic interpolation of the log-magnitude spectrum (Hann window)."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(signal)


def _encode_with_pyav(path: Path, signal: np.ndarray, rate: int, codec: str) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(signal[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


# --- real files ------------------------------------------------------------------------------------------------


def test_jfk_flac_decodes_to_mono_at_48k_with_the_right_length():
    path = _asset("jfk.flac")
    wave = decode_file(path)
    assert (wave.sample_rate, wave.samples.shape) == (44100, (485100, 2))  # 11.0 s of 24-bit stereo
    reference, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(wave.samples, reference)
    mono = to_mono(wave.samples)
    np.testing.assert_allclose(mono, reference.mean(axis=1), atol=1e-7)
    signal = prepare_waveform(wave, 48000)
    assert signal.dtype == np.float32 and signal.ndim == 1
    assert signal.shape[0] == 528000  # 11.0 s at 48 kHz
    # band-limited resampling keeps the level of speech (RMS within 1%)
    assert np.sqrt(np.mean(signal**2)) == pytest.approx(np.sqrt(np.mean(mono**2)), rel=0.01)


def test_esc50_clip_is_5_seconds_mono():
    wave = decode_file(_asset("esc50_1-100032-A-0.wav"))
    assert (wave.sample_rate, wave.samples.shape[1]) == (44100, 1)
    assert wave.duration_s == pytest.approx(5.0)
    assert prepare_waveform(wave, 48000).shape == (240000,)


def test_video_container_audio_track_via_pyav():
    wave = load_audio(str(require_asset("video/nasa_13013.mp4")))
    # the file has an 8 kHz mono and a 16 kHz stereo AAC track; FFmpeg's best-stream choice is the richer one
    assert (wave.sample_rate, wave.samples.shape[1]) == (16000, 2)
    assert wave.duration_s == pytest.approx(13.06, abs=0.05)
    assert np.abs(wave.samples).max() > 0.01  # real narration, not silence


# --- resampling ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
def test_resampling_keeps_duration_frequency_and_level(tmp_path, rate):
    path = tmp_path / f"tone_{rate}.wav"
    sf.write(path, _tone(rate, 2.0, (1000.0,), amplitude=0.5), rate, subtype="PCM_24")
    signal = prepare_waveform(load_audio(path), 48000)
    assert signal.shape[0] == 96000  # 2 s at 48 kHz, whatever the input rate
    assert _peak_frequency(signal, 48000) == pytest.approx(1000.0, abs=0.5)
    core = signal[4800:-4800]  # away from the filter's edge transients
    assert np.sqrt(np.mean(core**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_stereo_is_averaged_before_resampling():
    left, right = _tone(16000, 1.0, (500.0,)), _tone(16000, 1.0, (3000.0,))
    wave = load_audio((np.stack([left, right]), 16000))  # [channels, samples]: the short axis is channels
    assert wave.samples.shape == (16000, 2)
    np.testing.assert_allclose(to_mono(wave.samples), (left + right) / 2, atol=1e-7)


# --- PyAV formats ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "suffix"), [("libmp3lame", ".mp3"), ("aac", ".m4a")])
def test_compressed_files_decode_like_the_wav(tmp_path, codec, suffix):
    rate = 44100
    tone = _tone(rate, 2.0, (440.0, 1250.0))
    sf.write(tmp_path / "tone.wav", tone, rate, subtype="FLOAT")
    _encode_with_pyav(tmp_path / f"tone{suffix}", tone, rate, codec)
    reference = prepare_waveform(load_audio(tmp_path / "tone.wav"), 48000)
    decoded = prepare_waveform(load_audio(tmp_path / f"tone{suffix}"), 48000)
    # encoder delay is removed (LAME header / MP4 edit list): same start, at most one codec frame of tail padding
    assert 0 <= decoded.shape[0] - reference.shape[0] <= 1152
    n = reference.shape[0]
    assert np.corrcoef(decoded[:n], reference)[0, 1] > 0.99
    assert np.sqrt(np.mean((decoded[:n] - reference) ** 2)) < 0.02


def test_bytes_input_is_sniffed(tmp_path):
    path = _asset("esc50_3-132852-A-10.wav")
    from_bytes = load_audio(path.read_bytes())
    np.testing.assert_array_equal(from_bytes.samples, load_audio(path).samples)
    _encode_with_pyav(tmp_path / "t.mp3", _tone(44100, 1.0), 44100, "libmp3lame")
    assert load_audio((tmp_path / "t.mp3").read_bytes()).sample_rate == 44100


# --- in-memory inputs ------------------------------------------------------------------------------------------


def test_arrays_tensors_and_datasets_rows():
    tone = _tone(16000, 0.5)
    expected = load_audio((tone, 16000)).samples
    for raw in (
        (torch.from_numpy(tone), 16000),
        (tone[:, None], np.int64(16000)),
        {"array": tone, "sampling_rate": 16000, "path": None},
    ):
        np.testing.assert_allclose(load_audio(raw).samples, expected, atol=1e-7)
    bf16 = load_audio((torch.from_numpy(tone).to(torch.bfloat16), torch.tensor(16000)))
    np.testing.assert_allclose(bf16.samples, expected, atol=2e-3)  # bf16 keeps 8 bits of mantissa
    pcm16 = (tone * 32768).astype(np.int16)
    np.testing.assert_allclose(load_audio((pcm16, 16000)).samples[:, 0], tone, atol=1 / 32768)
    assert load_audio(tone, default_sample_rate=16000).sample_rate == 16000


def test_is_single_input_treats_an_array_rate_pair_as_one_clip():
    plugin = AudioPlugin(AudioPlugin.tiny_config())
    tone = _tone(16000, 0.1)
    assert plugin.is_single_input((tone, 16000))
    assert plugin.is_single_input([tone, 16000])
    assert plugin.is_single_input((torch.from_numpy(tone), torch.tensor(16000)))
    assert plugin.is_single_input((tone, np.int32(16000)))
    assert plugin.is_single_input("clip.wav")
    assert plugin.is_single_input({"array": tone, "sampling_rate": 16000})
    assert not plugin.is_single_input([(tone, 16000), (tone, 16000)])
    assert not plugin.is_single_input(["a.wav", "b.wav"])
    assert not plugin.is_single_input(("a.wav", "b.wav"))


# --- bad inputs ------------------------------------------------------------------------------------------------


def _raises(raw, *fragments: str) -> str:
    with pytest.raises(InputError) as info:
        AudioPlugin(AudioPlugin.tiny_config()).preprocess(raw)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_truncated_files_name_the_file(tmp_path):
    flac = _asset("jfk.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(flac[: len(flac) // 2])
    _raises(tmp_path / "cut.flac", "cut.flac", "truncated")
    wav = _asset("esc50_4-164859-A-1.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(wav[: len(wav) // 2])
    _raises(tmp_path / "cut.wav", "cut.wav", "truncated")
    _encode_with_pyav(tmp_path / "full.mp3", _tone(44100, 4.0), 44100, "libmp3lame")
    mp3 = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(mp3[: len(mp3) // 2])
    _raises(tmp_path / "cut.mp3", "cut.mp3", "truncated")


def test_corrupt_unknown_and_empty_files_name_the_file(tmp_path):
    (tmp_path / "notes.txt").write_text("these are notes, not sound")
    _raises(tmp_path / "notes.txt", "notes.txt", "not a readable audio file", "PyAV")
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x01" * 40)
    _raises(tmp_path / "bad.wav", "bad.wav", "soundfile", "PyAV")
    (tmp_path / "zero.flac").write_bytes(b"")
    _raises(tmp_path / "zero.flac", "zero.flac", "empty")
    sf.write(tmp_path / "silent.wav", np.zeros((0, 1), dtype=np.float32), 16000)
    _raises(tmp_path / "silent.wav", "silent.wav", "no audio samples")
    _raises(tmp_path / "missing.wav", "missing.wav", "not found")


def test_non_finite_samples_in_a_file(tmp_path):
    samples = _tone(16000, 0.5)
    samples[100] = np.nan
    sf.write(tmp_path / "nan.wav", samples, 16000, subtype="FLOAT")
    _raises(tmp_path / "nan.wav", "nan.wav", "NaN or inf")


def test_video_without_audio_track(tmp_path):
    path = tmp_path / "silent_video.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    _raises(path, "silent_video.mp4", "no audio stream")


def test_in_memory_bad_inputs_say_what_was_expected():
    _raises(np.zeros(1600, dtype=np.float32), "no sample rate", "(array, sample_rate)")
    _raises(torch.zeros(1600), "no sample rate")
    _raises((np.zeros(1600), None), "sample rate must be a positive integer")
    _raises((np.zeros(1600), 44100.5), "sample rate must be a positive integer")
    _raises({"array": np.zeros(1600)}, "sampling_rate", "missing")
    _raises((np.zeros((3, 4, 5)), 16000), "expected a 1-D")
    _raises((np.zeros((64, 64)), 16000), "no channel axis")
    _raises((np.array(["a", "b"]), 16000), "dtype")
    _raises((np.zeros(10), 16000, "extra"), "pair")
    _raises(3.5, "expected a path")


def test_overlong_inputs_are_refused_before_feature_extraction():
    plugin = AudioPlugin(AudioPlugin.tiny_config())
    plugin.config.max_duration_s = 2.0
    with pytest.raises(InputError, match="max_duration_s"):
        plugin.preprocess((np.zeros(16000 * 3, dtype=np.float32), 16000))
