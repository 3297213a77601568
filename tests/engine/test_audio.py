"""engine.audio: decoding, mixing, resampling, errors, and speech splitting."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from engine import audio as A
from engine.audio import SAMPLE_RATE, AudioChunk, audio_duration, load_audio, speech_probabilities, split_on_speech
from engine.errors import AudioError

HAS_FFMPEG = shutil.which("ffmpeg") is not None
HAS_ESPEAK = shutil.which("espeak-ng") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg not installed")
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng not installed")


def tone(freq=440.0, seconds=1.0, rate=SAMPLE_RATE, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x, rate=SAMPLE_RATE):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)]


# ----------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3"])
def test_formats_decode_to_16k_mono(tmp_path, suffix):
    path = tmp_path / f"tone.{suffix}"
    x = tone(seconds=2.0, rate=22050)
    if suffix == "mp3" and "MP3" not in sf.available_formats():
        if not HAS_FFMPEG:
            pytest.skip("neither libsndfile MP3 nor ffmpeg")
        sf.write(tmp_path / "src.wav", x, 22050)
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "src.wav"), str(path)], check=True)
    else:
        sf.write(path, x, 22050)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 2 * SAMPLE_RATE) <= 0.05 * SAMPLE_RATE  # MP3 adds encoder padding
    assert abs(peak_hz(y) - 440) < 2
    assert 0.3 < np.abs(y).max() < 0.7
    assert audio_duration(path) == pytest.approx(2.0, abs=0.1)


def test_stereo_is_mean_of_channels(tmp_path):
    left, right = tone(440), tone(1000, amp=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    y = load_audio(path)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


def test_resample_44k1_keeps_length_and_pitch(tmp_path):
    path = tmp_path / "cd.wav"
    sf.write(path, tone(440, seconds=3.0, rate=44100), 44100)
    y = load_audio(path)
    assert abs(len(y) - 3 * SAMPLE_RATE) <= 2
    assert abs(peak_hz(y) - 440) < 1
    assert audio_duration(path) == pytest.approx(3.0)


def test_block_reading_matches_one_shot_resampling(tmp_path, monkeypatch):
    """Long files are read and resampled in blocks; the result must match doing it at once."""
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((44100 * 2, 2))).astype(np.float32)
    path = tmp_path / "noise.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    monkeypatch.setattr(A, "_BLOCK_FRAMES", 1000)
    y = load_audio(path)
    ref = soxr.resample(x.mean(axis=1), 44100, SAMPLE_RATE)
    assert abs(len(y) - len(ref)) <= 1
    n = min(len(y), len(ref))
    assert np.abs(y[100 : n - 100] - ref[100 : n - 100]).max() < 1e-3


def test_silence_is_returned_not_refused(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(8000, np.float32), SAMPLE_RATE)
    y = load_audio(path)
    assert len(y) == 8000 and not y.any()


@needs_ffmpeg
def test_ffmpeg_fallback_reads_video_container(tmp_path):
    path = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2:sample_rate=48000",
         "-f", "lavfi", "-i", "color=size=32x32:duration=2", "-c:v", "mpeg4", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    with pytest.raises(sf.LibsndfileError):
        sf.info(path)  # soundfile cannot: this really goes through ffmpeg
    y = load_audio(path)
    assert abs(len(y) - 2 * SAMPLE_RATE) < 0.1 * SAMPLE_RATE
    assert abs(peak_hz(y) - 440) < 2
    assert audio_duration(path) == pytest.approx(2.0, abs=0.1)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="nothere.wav: file not found"):
        load_audio(tmp_path / "nothere.wav")
    with pytest.raises(AudioError, match="nothere.wav"):
        audio_duration(tmp_path / "nothere.wav")


def test_directory(tmp_path):
    d = tmp_path / "folder.wav"
    d.mkdir()
    with pytest.raises(AudioError, match="folder.wav: is a folder"):
        load_audio(d)


@pytest.mark.parametrize("ffmpeg", [True, False])
def test_corrupt_file(tmp_path, monkeypatch, ffmpeg):
    if ffmpeg and not HAS_FFMPEG:
        pytest.skip("ffmpeg not installed")
    if not ffmpeg:
        monkeypatch.setattr(A.shutil, "which", lambda name: None)
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(1).bytes(4000))
    with pytest.raises(AudioError) as e:
        load_audio(path)
    msg = str(e.value)
    assert "garbage.wav" in msg and "cannot decode audio: unknown format or damaged file" in msg and "\n" not in msg
    with pytest.raises(AudioError, match="garbage.wav"):
        audio_duration(path)


def test_zero_length_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="empty.wav: contains no audio"):
        load_audio(path)


# -------------------------------------------------------------------------- speech / VAD


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """A spoken sentence (espeak-ng) at 16 kHz, trimmed to where the voice is."""
    if not HAS_ESPEAK:
        pytest.skip("espeak-ng not installed")
    path = tmp_path_factory.mktemp("tts") / "s.wav"
    text = "The patient was given five milligrams of amlodipine and reported no chest pain."
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    x = load_audio(path)
    loud = np.flatnonzero(np.abs(x) > 0.02)
    return x[loud[0] : loud[-1] + 1]


def test_silence_gives_no_chunks():
    assert split_on_speech(np.zeros(5 * SAMPLE_RATE, np.float32)) == []
    assert split_on_speech(np.zeros(0, np.float32)) == []
    noise = (0.001 * np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE)).astype(np.float32)
    assert split_on_speech(noise) == []


def test_vad_runs_without_importing_torch():
    """The ONNX model is run directly: importing silero_vad (and torch) would cost seconds."""
    code = (
        "import sys, numpy as np; from engine.audio import speech_probabilities; "
        "speech_probabilities(np.zeros(2048, np.float32)); print('torch' in sys.modules, 'silero_vad' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # silero's own loader uses resources.path
def test_probabilities_match_silero_reference(speech):
    """Same inputs as silero's own OnnxWrapper (64 context samples, carried state): same output."""
    torch = pytest.importorskip("torch")
    from silero_vad import load_silero_vad

    x = np.concatenate([np.zeros(7000, np.float32), speech[: 3 * SAMPLE_RATE + 123]])
    ref = load_silero_vad(onnx=True).audio_forward(torch.from_numpy(x), SAMPLE_RATE).numpy().reshape(-1)
    np.testing.assert_allclose(speech_probabilities(x), ref, atol=1e-6)


def test_probabilities_one_per_window(speech):
    p = speech_probabilities(speech)
    assert len(p) == -(-len(speech) // 512)
    assert p.dtype == np.float32 and (p >= 0).all() and (p <= 1).all()
    assert p.mean() > 0.5  # it is speech from end to end
    assert speech_probabilities(np.zeros(3 * 512, np.float32)).max() < 0.2


@needs_espeak
def test_chunks_cover_speech_between_silences(speech):
    gap = np.zeros(3 * SAMPLE_RATE, np.float32)
    x = np.concatenate([gap[: 2 * SAMPLE_RATE], speech, gap, speech, gap[: SAMPLE_RATE]])
    s1 = 2.0
    e1 = s1 + len(speech) / SAMPLE_RATE
    s2 = e1 + 3.0
    e2 = s2 + len(speech) / SAMPLE_RATE
    seen = []
    chunks = split_on_speech(x, progress=seen.append)
    assert len(chunks) == 2  # a 3 s pause is not packed into one chunk
    for c, (s, e) in zip(chunks, [(s1, e1), (s2, e2)]):
        assert isinstance(c, AudioChunk)
        assert c.start <= s + 0.05 and c.end >= e - 0.05  # covers the speech
        assert c.start >= s - 0.5 and c.end <= e + 0.5  # but not the silence around it
        np.testing.assert_array_equal(c.audio, x[round(c.start * SAMPLE_RATE) : round(c.end * SAMPLE_RATE)])
    assert seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 10


@needs_espeak
def test_long_speech_is_cut_into_chunks_of_at_most_30s(speech):
    reps = int(np.ceil(70 * SAMPLE_RATE / len(speech)))
    x = np.tile(speech, reps)[: 70 * SAMPLE_RATE]
    chunks = split_on_speech(x, max_seconds=30.0)
    assert len(chunks) >= 3
    assert all(c.end - c.start <= 30.0 + 1e-6 for c in chunks)
    covered = sum(c.end - c.start for c in chunks)
    assert covered >= 0.9 * 70
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:]))


def _plan(probs, max_seconds=30.0, **kw):
    opts = dict(min_silence_s=0.3, pad_s=0.2, threshold=0.5, max_gap_s=2.0) | kw
    return A._plan_chunks(np.asarray(probs, np.float32), len(probs) * A.VAD_FRAME_S, max_seconds, **opts)


def test_plan_cuts_long_speech_at_lowest_probability():
    f = A.VAD_FRAME_S
    probs = np.full(round(70 / f), 0.95)
    dip = round(20 / f)
    probs[dip] = 0.6  # a breath: still above threshold, but the least speech-like point
    chunks = _plan(probs)
    assert chunks[0][0] == 0.0
    assert chunks[0][1] == pytest.approx((dip + 0.5) * f)
    assert all(e - s <= 30.0 + 1e-9 for s, e in chunks)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))  # contiguous, nothing lost
    assert chunks[-1][1] == pytest.approx(len(probs) * f)


def test_plan_merges_short_pauses_pads_and_packs():
    f = A.VAD_FRAME_S
    probs = np.zeros(round(20 / f))
    probs[round(1 / f) : round(2 / f)] = 0.9
    probs[round(2.1 / f) : round(3 / f)] = 0.9  # 0.1 s pause: same region
    probs[round(4 / f) : round(5 / f)] = 0.9  # 1 s pause: new region, packed into the chunk
    probs[round(10 / f) : round(11 / f)] = 0.9  # 5 s pause: a new chunk
    probs[round(15 / f)] = 0.9  # a 32 ms click: dropped
    chunks = _plan(probs)
    assert len(chunks) == 2
    assert chunks[0] == pytest.approx((1 - 0.2, 5 + 0.2), abs=f)
    assert chunks[1] == pytest.approx((10 - 0.2, 11 + 0.2), abs=f)
    # with a 3 s limit the 1 s pause no longer fits in one chunk
    assert len(_plan(probs, max_seconds=3.0)) == 3
    assert _plan(np.zeros(100)) == []


@needs_espeak
def test_chunks_carry_their_vad_probabilities_and_speech_is_not_checked_twice(speech, monkeypatch):
    """The transcriber asks whether a chunk holds speech; the file's VAD run already knows."""
    import engine.audio
    from engine.transcriber import holds_speech

    x = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), speech, np.zeros(SAMPLE_RATE // 3, np.float32)])
    whole = speech_probabilities(x)
    chunks = split_on_speech(x)
    assert chunks
    for c in chunks:
        a, b = round(c.start * SAMPLE_RATE), round(c.end * SAMPLE_RATE)
        assert len(c.speech_probs) == -(-b // 512) - a // 512
        np.testing.assert_array_equal(c.speech_probs, whole[a // 512:-(-b // 512)])
    fresh = [holds_speech(c.audio) for c in chunks]

    def no_second_run(*args, **kwargs):
        raise AssertionError("the VAD ran again")

    monkeypatch.setattr(engine.audio, "speech_probabilities", no_second_run)
    assert [holds_speech(c.audio, c.speech_probs) for c in chunks] == fresh == [True] * len(chunks)
    assert not holds_speech(np.zeros(SAMPLE_RATE, np.float32), np.zeros(32, np.float32))


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_log_mel_equals_transformers_feature_extractor(n_mels):
    """The front end is computed without transformers, to the very same values."""
    from transformers import WhisperFeatureExtractor

    from engine.features import whisper_log_mel

    extractor = WhisperFeatureExtractor(feature_size=n_mels)
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 3) / 16000
    for audio in (np.sin(2 * np.pi * 440 * t) * np.linspace(0, 1, len(t)), rng.standard_normal(7123) * 0.1,
                  rng.standard_normal(100) * 0.1):
        audio = audio.astype(np.float32)
        padded = np.pad(audio, (0, 480000 - len(audio)))
        expected = extractor(padded, sampling_rate=16000, return_tensors="np").input_features[0]
        got = whisper_log_mel(audio, n_mels, pad_to_30s=True)
        assert got.shape == expected.shape == (n_mels, 3000)
        np.testing.assert_array_equal(got, expected.astype(np.float32))
