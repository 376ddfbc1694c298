"""Tests of emoportrait.audio on synthetic signals."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import soundfile as sf

from emoportrait import audio
from emoportrait.audio import AudioConfig
from emoportrait.errors import InputError

from .conftest import shared_media

SR = 16000
CFG = AudioConfig()


def tone(freq: float, seconds: float, sr: int = SR, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(samples: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * sr / len(samples))


def voiced(pitch: tuple[float, float], formants: tuple[tuple[float, float], ...],
           seconds: float) -> np.ndarray:
    """A vowel-like harmonic complex: pitch and formant centres glide linearly."""
    n = round(seconds * SR)
    t = np.arange(n) / SR
    progress = t / seconds
    f0 = pitch[0] + (pitch[1] - pitch[0]) * progress
    phase = 2 * np.pi * np.cumsum(f0) / SR
    signal = np.zeros(n)
    for k in range(1, 60):
        gain = sum(
            np.exp(-0.5 * ((k * f0 - (start + (end - start) * progress)) / 150.0) ** 2)
            for start, end in formants
        )
        signal += np.where(k * f0 < 7000, gain, 0.0) * np.sin(k * phase)
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)
    return 0.1 * signal * fade


# Segments (pitch glide, formant glides, seconds) and the other clip's per-segment stretch.
SEGMENTS = [
    ((120, 180), ((300, 700), (2200, 1200)), 0.30),
    ((200, 140), ((800, 400), (1000, 2400)), 0.25),
    ((110, 150), ((500, 300), (1500, 2800)), 0.35),
    ((220, 260), ((350, 750), (2600, 1600)), 0.20),
    ((170, 120), ((700, 500), (1100, 1900)), 0.30),
]
STRETCH = [1.4, 0.7, 1.25, 1.5, 0.8]
GAP_S = 0.06


def speech_like(stretch: list[float]) -> tuple[np.ndarray, list[float]]:
    """Voiced segments separated by quiet noise; returns samples and segment knots (s).

    The knots are the start/end times of every voiced segment, so two clips built with
    different ``stretch`` correspond piecewise linearly between their knots.
    """
    rng = np.random.default_rng(0)
    pieces, knots, now = [], [], 0.0
    for (pitch, formants, seconds), factor in zip(SEGMENTS, stretch):
        pieces.append(np.zeros(round(GAP_S * SR)))
        now += GAP_S
        duration = round(seconds * factor * SR) / SR
        pieces.append(voiced(pitch, formants, duration))
        knots += [now, now + duration]
        now += duration
    pieces.append(np.zeros(round(GAP_S * SR)))
    samples = np.concatenate(pieces)
    samples += 1e-3 * rng.standard_normal(len(samples))
    return samples.astype(np.float32), knots


@pytest.fixture(scope="module")
def dtw_case():
    reference, ref_knots = speech_like([1.0] * len(SEGMENTS))
    other, other_knots = speech_like(STRETCH)
    ref_mfcc, other_mfcc = audio.mfcc(reference, CFG), audio.mfcc(other, CFG)
    result = audio.dtw_align(ref_mfcc, other_mfcc)
    return {
        "reference": reference, "other": other, "ref_knots": ref_knots,
        "other_knots": other_knots, "ref_mfcc": ref_mfcc, "other_mfcc": other_mfcc,
        "result": result,
    }


# ------------------------------------------------------------------ MFCC windows


def test_mfcc_shape_and_step_count():
    samples = tone(300, 1.23)
    features = audio.mfcc(samples, CFG)
    assert features.shape == (1 + math.ceil((len(samples) - 400) / 160), 12)
    assert features.dtype == np.float32


def test_mfcc_equals_evps_on_real_mead_speech():
    """EVP's audio2lm code: ``python_speech_features.mfcc(speech, 16000, winstep=0.01)``,
    c0 dropped. The features feed the decoder's ``90 tanh`` output, so they must also
    stay inside its range on real speech."""
    python_speech_features = pytest.importorskip("python_speech_features")
    speech = audio.load_audio(shared_media("mead/audio/M003_neutral.wav"))
    ours = audio.mfcc(speech, CFG)
    evp = python_speech_features.mfcc(speech, 16000, winstep=0.01)[:, 1:]
    assert ours.shape == evp.shape
    assert np.abs(ours - evp).max() <= 1e-3
    assert np.mean(np.abs(ours) >= 90.0) < 1e-3


def test_window_starts_match_evp_at_25_fps():
    starts = audio.window_starts(200, 25.0, CFG)
    np.testing.assert_array_equal(starts, 4 * (np.arange(200) - 3))


def test_window_starts_are_centred_at_other_fps():
    starts = audio.window_starts(300, 30.0, CFG)
    centres = starts + CFG.window_steps / 2  # window's centre, in steps
    frame_middles = (np.arange(300) + 0.5) / 30.0 * 100.0
    assert np.max(np.abs(centres - frame_middles)) <= 0.5


def test_mfcc_windows_shape_and_edge_padding():
    samples = tone(300, 1.23) * np.linspace(0.2, 1.0, round(1.23 * SR), dtype=np.float32)
    windows = audio.mfcc_windows(samples, 25.0, CFG)
    n_frames = math.ceil(1.23 * 25)
    assert windows.shape == (n_frames, 28, 12)
    assert audio.frame_count(len(samples), 25.0, CFG) == n_frames
    features = audio.mfcc(samples, CFG)
    # Frame 0's window starts at step -12: 12 replicated copies of step 0, then steps 0..15.
    np.testing.assert_array_equal(windows[0, :12], np.repeat(features[:1], 12, axis=0))
    np.testing.assert_array_equal(windows[0, 12:], features[:16])
    np.testing.assert_array_equal(windows[5], features[8:36])
    # The last window runs past the end: its tail repeats the last step.
    last_start = 4 * (n_frames - 1 - 3)
    n_inside = len(features) - last_start
    np.testing.assert_array_equal(windows[-1, :n_inside], features[last_start:])
    np.testing.assert_array_equal(
        windows[-1, n_inside:], np.repeat(features[-1:], 28 - n_inside, axis=0)
    )


def test_mfcc_windows_forced_frame_count():
    samples = tone(300, 1.0)
    windows = audio.mfcc_windows(samples, 25.0, CFG)
    longer = audio.mfcc_windows(samples, 25.0, CFG, n_frames=40)
    shorter = audio.mfcc_windows(samples, 25.0, CFG, n_frames=10)
    assert longer.shape == (40, 28, 12)
    np.testing.assert_array_equal(longer[:25], windows)
    np.testing.assert_array_equal(shorter, windows[:10])
    last = audio.mfcc(samples, CFG)[-1]
    np.testing.assert_array_equal(longer[-1], np.broadcast_to(last, (28, 12)))


def test_tone_burst_lands_in_the_right_window():
    samples = np.zeros(2 * SR, dtype=np.float32)
    samples[SR : SR + 640] = tone(1000, 0.04)  # 1.00 s - 1.04 s: exactly video frame 25
    windows = audio.mfcc_windows(samples, 25.0, CFG)
    background = np.median(windows.reshape(-1, 12), axis=0)
    strength = np.linalg.norm(windows - background, axis=2)  # (T, 28)
    assert int(np.argmax(strength[:, 12:16].sum(axis=1))) == 25
    assert 12 <= int(np.argmax(strength[25])) <= 16  # centred in frame 25's window
    # Frames more than 4 away never see the burst in their window.
    assert strength[[19, 20, 30, 31]].max() < 1e-3 * strength.max()


# ----------------------------------------------------------- loudness / silence


def test_silence_is_the_middle_second():
    samples = np.concatenate([tone(440, 1.0), np.zeros(SR, np.float32), tone(440, 1.0)])
    loudness = audio.frame_loudness(samples, 25.0, CFG)
    assert loudness.shape == (75,)
    assert abs(float(np.median(loudness[:25])) - 20 * math.log10(0.5 / math.sqrt(2))) < 0.1
    assert loudness[30] == audio.LOUDNESS_FLOOR_DB
    silent = np.flatnonzero(audio.silence_mask(samples, 25.0, CFG))
    assert 24 <= silent.min() <= 26 and 48 <= silent.max() <= 50
    assert len(silent) == silent.max() - silent.min() + 1  # one contiguous stretch


def test_short_dip_is_not_silence():
    samples = tone(440, 1.0)
    samples[7680:8320] = 0.0  # 40 ms dip at 0.48 s: all of frame 12
    loudness = audio.frame_loudness(samples, 25.0, CFG)
    assert loudness[12] < loudness[0] - 40.0  # the dip itself is below the threshold...
    assert not audio.silence_mask(samples, 25.0, CFG).any()  # ...but too short to count


def test_quiet_clip_is_silent_by_absolute_floor_and_extra_frames_are_silent():
    quiet = tone(440, 1.0, amplitude=10 ** (-70 / 20))
    assert audio.silence_mask(quiet, 25.0, CFG).all()
    loud = tone(440, 1.0)
    mask = audio.silence_mask(loud, 25.0, CFG, n_frames=30)
    assert not mask[:25].any() and mask[25:].all()


# ------------------------------------------------------------------------ I/O


def test_load_audio_48k_stereo(tmp_path):
    left, right = tone(440, 2.0, sr=48000, amplitude=0.4), tone(440, 2.0, sr=48000, amplitude=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 48000)
    samples = audio.load_audio(path, CFG)
    assert samples.ndim == 1 and samples.dtype == np.float32
    assert abs(len(samples) - 2 * SR) <= 0.001 * 2 * SR
    assert abs(peak_frequency(samples, SR) - 440.0) < 2.0


def test_load_audio_8k_warns(tmp_path, caplog):
    path = tmp_path / "phone.wav"
    sf.write(path, tone(440, 1.5, sr=8000), 8000)
    with caplog.at_level(logging.WARNING, logger="emoportrait.audio"):
        samples = audio.load_audio(path, CFG)
    assert abs(len(samples) - 1.5 * SR) <= 0.001 * 1.5 * SR
    assert abs(peak_frequency(samples, SR) - 440.0) < 2.0
    assert any("bandwidth" in record.getMessage() for record in caplog.records)


def test_resample_keeps_frequency_and_length():
    samples = audio.resample(tone(1000, 1.0, sr=44100), 44100, SR)
    assert samples.dtype == np.float32 and len(samples) == SR
    assert abs(peak_frequency(samples, SR) - 1000.0) < 2.0


def test_write_wav_roundtrip_and_atomic_cleanup(tmp_path, monkeypatch):
    path = tmp_path / "out.wav"
    samples = tone(440, 0.5)
    audio.write_wav(path, samples, SR)
    read, rate = sf.read(path, dtype="float32")
    assert rate == SR and np.max(np.abs(read - samples)) < 1e-4

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(audio.sf, "write", broken_write)
    with pytest.raises(OSError):
        audio.write_wav(path, np.zeros(10, np.float32), SR)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]  # no temp file left
    np.testing.assert_array_equal(sf.read(path, dtype="float32")[0], read)  # old file intact


def test_write_wav_creates_missing_directories(tmp_path):
    audio.write_wav(tmp_path / "new" / "out.wav", tone(440, 0.1), SR)
    assert sf.info(tmp_path / "new" / "out.wav").frames == int(0.1 * SR)


# --------------------------------------------------------------- check_speech


def test_check_speech_rejects_short_clip():
    with pytest.raises(InputError) as info:
        audio.check_speech(tone(440, 0.1), CFG, name="short.wav")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("'short.wav' is 0.10 s long; at least 0.50 s of speech is needed")


def test_check_speech_rejects_silent_clip():
    with pytest.raises(InputError) as info:
        audio.check_speech(np.zeros(SR, np.float32), CFG, name="mute.wav")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("'mute.wav' is silent (peak -inf dBFS)")
    audio.check_speech(tone(440, 1.0), CFG, name="ok.wav")  # accepted


# ------------------------------------------------------------------------- DTW


def test_dtw_recovers_known_warp(dtw_case):
    result = dtw_case["result"]
    n_ref, n_other = len(dtw_case["ref_mfcc"]), len(dtw_case["other_mfcc"])
    path = result.path
    assert path.shape[1] == 2 and path.dtype.kind == "i"
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n_ref - 1, n_other - 1)
    assert np.all(np.diff(path, axis=0) >= 0)

    ref_times = np.arange(n_ref) * 0.01
    knots_ref = [0.0, *dtw_case["ref_knots"], (n_ref - 1) * 0.01]
    knots_other = [0.0, *dtw_case["other_knots"], (n_other - 1) * 0.01]
    truth = np.interp(ref_times, knots_ref, knots_other) / 0.01
    found = audio.warp_features(np.arange(n_other, dtype=float), path, n_ref)
    error = np.abs(found - truth)
    assert np.median(error) <= 2.0
    assert np.percentile(error, 90) <= 3.0


def test_dtw_identical_inputs_give_diagonal(dtw_case):
    features = dtw_case["ref_mfcc"]
    result = audio.dtw_align(features, features)
    np.testing.assert_array_equal(result.path, np.stack([np.arange(len(features))] * 2, axis=1))
    assert result.cost < 1e-6
    assert dtw_case["result"].cost > 0.1  # a warped clip costs more


def test_dtw_rejects_short_features():
    with pytest.raises(InputError, match="at least 50 steps"):
        audio.dtw_align(np.zeros((10, 12)), np.zeros((100, 12)))


def test_warp_features_means_matched_steps(dtw_case):
    path = np.array([[0, 0], [0, 1], [1, 2], [2, 2], [2, 3]])
    other = np.arange(4.0)[:, None] * np.ones((1, 3))
    np.testing.assert_allclose(audio.warp_features(other, path, 3)[:, 0], [0.5, 2.0, 2.5])
    windows = np.random.default_rng(1).standard_normal((len(dtw_case["other_mfcc"]), 28, 12))
    warped = audio.warp_features(windows, dtw_case["result"].path, len(dtw_case["ref_mfcc"]))
    assert warped.shape == (len(dtw_case["ref_mfcc"]), 28, 12)


def test_warp_waveform_brings_mfcc_closer(dtw_case):
    reference, other = dtw_case["reference"], dtw_case["other"]
    warped = audio.warp_waveform(other, dtw_case["result"].path, len(reference), CFG)
    assert warped.shape == reference.shape and warped.dtype == np.float32
    unwarped = np.zeros_like(reference)
    unwarped[: min(len(other), len(reference))] = other[: len(reference)]
    ref_mfcc = dtw_case["ref_mfcc"]
    warped_error = np.mean(np.abs(audio.mfcc(warped, CFG) - ref_mfcc))
    unwarped_error = np.mean(np.abs(audio.mfcc(unwarped, CFG) - ref_mfcc))
    assert warped_error < 0.5 * unwarped_error


def test_warp_waveform_identity_reconstructs_and_stretch_keeps_pitch():
    samples = tone(440, 1.0)
    n_steps = 1 + len(samples) // 160
    diagonal = np.stack([np.arange(n_steps)] * 2, axis=1)
    same = audio.warp_waveform(samples, diagonal, len(samples), CFG)
    assert np.max(np.abs(same[400:-400] - samples[400:-400])) < 1e-3
    # Stretch to twice the length: reference step n matches other step n // 2.
    doubled = np.stack([np.arange(2 * n_steps), np.arange(2 * n_steps) // 2], axis=1)
    stretched = audio.warp_waveform(samples, doubled, 2 * len(samples), CFG)
    assert len(stretched) == 2 * len(samples)
    assert abs(peak_frequency(stretched, SR) - 440.0) < 2.0


def test_align_audio(dtw_case):
    warped, result = audio.align_audio(dtw_case["reference"], dtw_case["other"], CFG)
    assert warped.shape == dtw_case["reference"].shape
    np.testing.assert_array_equal(result.path, dtw_case["result"].path)
    with pytest.raises(InputError, match="'other' is 0.10 s long"):
        audio.align_audio(dtw_case["reference"], tone(440, 0.1), CFG)
