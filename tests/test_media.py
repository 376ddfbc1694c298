"""media: decode, encode, mux, still images, atomic writes, bad files."""

from __future__ import annotations

import av
import numpy as np
import pytest

from emoportrait import media
from emoportrait.errors import InputError

RATE = 16000


def _flash_frames(n: int, flash: int, size=(48, 64)) -> list[np.ndarray]:
    return [np.full((*size, 3), 255 if i == flash else 16, np.uint8) for i in range(n)]


def _click_audio(seconds: float, at_s: float) -> np.ndarray:
    audio = np.zeros(int(seconds * RATE), np.float32)
    start = int(at_s * RATE)
    audio[start : start + 160] = 0.9
    return audio


def test_round_trip_keeps_frames_fps_and_size(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(20)]
    assert media.write_video(path, frames, 25.0) == 20
    info = media.probe(path)
    assert (info.width, info.height, info.fps, info.n_frames) == (64, 48, 25.0, 20)
    assert not info.has_audio and not info.is_image
    decoded = media.read_frames(path)
    assert decoded.shape == (20, 48, 64, 3)
    assert np.abs(decoded.astype(int) - np.stack(frames)).max() <= 3


def test_audio_is_muxed_in_sync_with_video(tmp_path):
    path = tmp_path / "sync.mp4"
    flash_frame = 30  # 1.2 s at 25 fps
    media.write_video(path, _flash_frames(60, flash_frame), 25.0, _click_audio(2.4, 1.2), RATE)
    info = media.probe(path)
    assert info.has_audio and info.audio_sample_rate == RATE
    brightness = media.read_frames(path).mean(axis=(1, 2, 3))
    assert int(np.argmax(brightness)) == flash_frame
    audio, rate = media.read_audio(path)
    click_s = np.argmax(np.abs(audio) > 0.3) / rate
    assert abs(click_s - flash_frame / 25.0) < 0.005  # AAC priming would shift it by 64 ms


def test_odd_sizes_are_padded_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    media.write_video(path, [np.zeros((31, 45, 3), np.uint8)] * 3, 25.0)
    assert media.read_frames(path).shape == (3, 32, 46, 3)


def test_ntsc_frame_rate(tmp_path):
    path = tmp_path / "ntsc.mp4"
    media.write_video(path, [np.zeros((32, 32, 3), np.uint8)] * 30, 30000 / 1001)
    assert media.probe(path).fps == pytest.approx(29.97, abs=0.01)


@pytest.mark.parametrize("suffix,codec", [(".mkv", "libx264"), (".avi", "mpeg4"), (".mov", "libx264"),
                                          (".webm", "libvpx-vp9")])
def test_reads_common_containers(tmp_path, suffix, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec}")
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    frames = list(media.iter_frames(path))
    assert len(frames) == 10 and frames[0].shape == (48, 64, 3)
    assert media.probe(path).fps == pytest.approx(25.0)


def test_still_image_is_a_one_frame_target(tmp_path, portrait):
    path = tmp_path / "face.png"
    media.write_image(path, portrait)
    info = media.probe(path)
    assert info.is_image and info.n_frames == 1 and (info.width, info.height) == (256, 256)
    (frame,) = list(media.iter_frames(path))
    np.testing.assert_array_equal(frame, portrait)
    with pytest.raises(InputError, match="image and has no audio"):
        media.read_audio(path)


def test_frames_are_streamed_not_loaded_whole(rolling_video):
    frames = media.iter_frames(rolling_video)
    first = next(frames)
    assert first.shape == (256, 256, 3)
    frames.close()


def test_read_audio_of_video_and_wav(tmp_path, rolling_video):
    audio, rate = media.read_audio(rolling_video)
    assert rate == RATE and audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / rate - 1.6) < 0.1


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match="nope.mp4' does not exist"):
        media.probe(tmp_path / "nope.mp4")


def test_corrupt_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"this is not a video" * 100)
    with pytest.raises(InputError) as caught:
        list(media.iter_frames(path))
    assert "junk.mp4" in str(caught.value) and "\n" not in str(caught.value)


def test_truncated_video_is_reported(tmp_path, rolling_video):
    path = tmp_path / "cut.mp4"
    data = open(rolling_video, "rb").read()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut.mp4' is not a readable .* truncated or corrupt \(Invalid data"):
        media.probe(path)


def test_video_without_audio_is_reported(tmp_path):
    path = tmp_path / "silent.mp4"
    media.write_video(path, _flash_frames(5, 0), 25.0)
    with pytest.raises(InputError, match="no audio stream"):
        media.read_audio(path)


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with media.VideoWriter(path, 25.0) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            raise RuntimeError("crash mid-way")
    assert list(tmp_path.iterdir()) == []


def test_frame_size_change_is_an_error_and_leaves_no_file(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(InputError, match="but the video is 32x32"):
        media.write_video(path, [np.zeros((32, 32, 3), np.uint8), np.zeros((16, 16, 3), np.uint8)], 25.0)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_a_failed_rewrite(tmp_path):
    path = tmp_path / "out.mp4"
    media.write_video(path, _flash_frames(3, 0), 25.0)
    before = path.read_bytes()
    with pytest.raises(InputError):
        media.write_video(path, [], 25.0)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_stereo_is_averaged_to_mono(tmp_path):
    import soundfile

    t = np.arange(RATE) / RATE
    left, right = 0.8 * np.sin(2 * np.pi * 300 * t), 0.8 * np.sin(2 * np.pi * 300 * t)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), RATE)
    audio, rate = media.read_audio(tmp_path / "stereo.wav")
    assert rate == RATE and audio.shape == (RATE,)
    assert np.abs(audio).max() == pytest.approx(0.8, abs=0.01)


def test_outputs_are_checked_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("")
    media.check_output(tmp_path / "new" / "deeper" / "out.mp4", {".mp4"})  # folders to be made: fine
    media.check_output_folder(tmp_path / "new_run")
    with pytest.raises(InputError, match="output folder '.*a_file' is a file; choose a folder name"):
        media.check_output_folder(tmp_path / "a_file")
    with pytest.raises(InputError, match="is a file, not a folder"):
        media.check_output_folder(tmp_path / "a_file" / "run")
    with pytest.raises(InputError, match="must end with one of .mov, .mp4"):
        media.check_output(tmp_path / "out.gif", {".mp4", ".mov"})
    monkeypatch.setattr(media.os, "access", lambda path, mode: False)  # a read-only folder (the suite may run as root)
    with pytest.raises(InputError, match="cannot write in .* \\(permission denied\\); choose another place"):
        media.check_output(tmp_path / "out.mp4", {".mp4"})


def test_a_one_frame_gif_is_a_still_and_an_animated_one_keeps_its_rate(tmp_path):
    """GIFs state a 100 fps time base: a GIF portrait became 609 frames at 100 fps."""
    from PIL import Image

    frames = [Image.fromarray(np.full((32, 32, 3), 20 * i, np.uint8)) for i in range(5)]
    frames[0].save(tmp_path / "portrait.gif")
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:], duration=40, loop=0)
    still = media.probe(tmp_path / "portrait.gif")
    assert still.is_image and still.n_frames == 1 and still.duration_s == 0
    assert len(list(media.iter_frames(tmp_path / "portrait.gif"))) == 1
    moving = media.probe(tmp_path / "moving.gif")
    assert moving.fps == 25 and moving.n_frames == 5


def test_a_truncated_wav_is_refused_and_a_streamed_one_is_read(tmp_path):
    import soundfile

    samples = (0.1 * np.random.default_rng(0).standard_normal(6 * 16000)).astype(np.float32)
    soundfile.write(tmp_path / "full.wav", samples, 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: int(0.3 * len(data))])
    with pytest.raises(InputError, match="is truncated: its header states 6.0 s of sound but the file holds 1.8 s"):
        media.read_audio(tmp_path / "cut.wav")
    streamed = bytearray(data)
    streamed[40:44] = b"\xff\xff\xff\xff"  # the data chunk's length left unknown, as pipes write it
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert len(media.read_audio(tmp_path / "streamed.wav")[0]) == len(samples)
    assert len(media.read_audio(tmp_path / "full.wav")[0]) == len(samples)


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_a_phone_clip_is_shown_as_its_display_matrix_turns_it(tmp_path, degrees):
    """Phones store portrait clips as landscape frames plus a rotation; it was dropped."""
    stored = np.full((32, 48, 3), 16, np.uint8)
    stored[:8, :16] = 240  # a bright block in the stored frame's top-left corner
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.set_display_rotation(degrees)
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")))
        container.mux(stream.encode())
    shown = np.rot90(stored, degrees // 90)  # counterclockwise, as ffmpeg and players show it
    info = media.probe(path)
    assert (info.height, info.width) == shown.shape[:2]
    frame = next(media.iter_frames(path))
    assert frame.shape == shown.shape
    assert np.abs(frame.astype(int) - shown).mean() < 4
    halved = next(media.iter_frames(path, height=shown.shape[0] // 2))  # scaled while decoding, then turned
    assert halved.shape == (shown.shape[0] // 2, shown.shape[1] // 2, 3)
    assert np.abs(halved.astype(int) - media.resize_to_height(shown, shown.shape[0] // 2)).mean() < 6


def test_stereo_is_written_as_stereo_and_more_channels_are_refused(tmp_path):
    t = np.arange(RATE) / RATE
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    frames = [np.zeros((32, 32, 3), np.uint8)] * 25
    media.write_video(tmp_path / "stereo.mp4", frames, 25.0, stereo, RATE)
    played, rate = media.read_audio(tmp_path / "stereo.mp4", mono=False)
    assert rate == RATE and played.shape[0] == 2
    assert np.abs(played[0]).max() == pytest.approx(0.5, abs=0.05)
    assert np.abs(played[1]).max() == pytest.approx(0.1, abs=0.02)
    assert media.read_audio(tmp_path / "stereo.mp4")[0].ndim == 1  # mono by default
    with pytest.raises(InputError, match="give \\(S,\\) mono or \\(2, S\\) stereo"):
        media.write_video(tmp_path / "surround.mp4", frames, 25.0, np.zeros((6, RATE), np.float32), RATE)
    assert not (tmp_path / "surround.mp4").exists()


def test_a_rate_aac_cannot_carry_is_resampled_to_the_next_one_up(tmp_path):
    """The speech now keeps its own rate; at 37 kHz the AAC encoder refused to open."""
    rate = 37000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    media.write_video(tmp_path / "odd.mp4", [np.zeros((32, 32, 3), np.uint8)] * 25, 25.0, tone, rate)
    played, played_rate = media.read_audio(tmp_path / "odd.mp4")
    assert played_rate == 44100 and abs(len(played) / played_rate - 1.0) < 0.05
    assert np.abs(played).max() == pytest.approx(0.3, abs=0.03)
