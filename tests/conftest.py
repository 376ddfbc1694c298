"""Shared test media, all made on the fly (nothing downloaded, nothing committed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from emoportrait import media

FPS = 25.0
SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
"""Real faces and speech of public talking-face projects (see its README); absent in most checkouts."""


def shared_media(relative: str) -> Path:
    """The file ``relative`` of :data:`SHARED_MEDIA`; the test is skipped when it is absent."""
    path = SHARED_MEDIA / relative
    if not path.is_file():
        pytest.skip(f"{relative} is not in {SHARED_MEDIA}")
    return path


@pytest.fixture(scope="session")
def demo_speech() -> np.ndarray:
    """The bundled demo sentence (espeak-ng), ``(S,)`` float32 at 16 kHz."""
    import importlib.resources

    from emoportrait import audio

    resource = importlib.resources.files("emoportrait") / "data" / "demo_speech.flac"
    with importlib.resources.as_file(resource) as path:
        return audio.load_audio(path)


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    """scikit-image's public-domain astronaut portrait, 256x256 RGB, face near the centre-top."""
    return cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="session")
def close_portrait() -> np.ndarray:
    """A head-and-shoulders crop of the astronaut, 256x256, face about 110 px wide.

    The tracker needs a face this size to follow the inner lips reliably when the
    output of ``generate`` is re-tracked.
    """
    crop = skimage.data.astronaut()[0:320, 60:380]
    return cv2.resize(crop, (256, 256), interpolation=cv2.INTER_AREA)


def rotate_about(image: np.ndarray, degrees: float, centre: tuple[float, float], shift=(0.0, 0.0)) -> np.ndarray:
    """Rotate ``image`` in the image plane (counter-clockwise as seen for positive degrees)."""
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    matrix[:, 2] += shift
    return cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="session")
def rolling_frames(portrait: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """40 frames of the portrait tilting in the image plane by a known angle.

    Returns ``(frames (40, 256, 256, 3) uint8, angles (40,) degrees, counter-clockwise)``.
    """
    angles = 12.0 * np.sin(np.linspace(0, 2 * np.pi, 40))
    frames = np.stack([rotate_about(portrait, a, (110.0, 65.0)) for a in angles])
    return frames, angles


@pytest.fixture(scope="session")
def rolling_video(tmp_path_factory, rolling_frames) -> str:
    """The rolling frames as an mp4 with a 440 Hz tone as its sound."""
    path = tmp_path_factory.mktemp("media") / "rolling.mp4"
    frames, _ = rolling_frames
    rate = 16000
    t = np.arange(int(len(frames) / FPS * rate)) / rate
    media.write_video(path, frames, FPS, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    return str(path)
