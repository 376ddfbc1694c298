"""The web page (``emoportrait ui``): its handlers, and the page itself in a real headless Chromium.

The browser tests need the ``ui`` extra (Gradio), Playwright (``dev`` extra) and Debian's
Chromium at /usr/bin/chromium (``scripts/install.sh --dev`` installs all three); they
are skipped when one is missing.
"""

from __future__ import annotations

import shutil
import socket
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from emoportrait import media
from emoportrait.errors import InputError
from emoportrait.ui import PROCEDURAL, WARP, Runs, emotion_spec, make_video

pytestmark = pytest.mark.slow  # a server and a browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]  # offline machines


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, close_portrait, demo_speech) -> tuple[Path, Path]:
    """A 256² portrait and 2 s of the demo speech, as files a user would upload."""
    folder = tmp_path_factory.mktemp("uploads")
    portrait, speech = folder / "astronaut.png", folder / "hello.wav"
    media.write_image(portrait, close_portrait)
    wavfile.write(speech, 16000, (demo_speech[: 2 * 16000] * 32767).astype(np.int16))
    return portrait, speech


def test_emotion_controls_give_the_spec_a_user_means():
    assert emotion_spec("sad", 0.3).weights == {"sad": 0.3}
    assert emotion_spec("sad", 0.3, " angry:0.6,fear:0.4 ").weights == {"angry": 0.6, "fear": 0.4}
    assert emotion_spec("neutral", 0.7).describe() == "neutral"
    with pytest.raises(InputError, match="unknown emotion"):
        emotion_spec("sad", 1.0, "grumpy:0.5")


def test_make_video_names_what_is_missing(tmp_path, inputs):
    portrait, speech = inputs
    with pytest.raises(InputError, match="upload a portrait"):
        make_video(None, speech, emotion_spec("happy", 1.0), tmp_path)
    with pytest.raises(InputError, match="upload or record the speech"):
        make_video(portrait, None, emotion_spec("happy", 1.0), tmp_path)
    with pytest.raises(InputError, match="learned driver"):
        make_video(portrait, speech, emotion_spec("happy", 1.0), tmp_path, emotion_audio=speech)
    with pytest.raises(InputError, match="does not exist"):
        Runs.named(drivers=[tmp_path / "no_such_run"])


def test_make_video_writes_a_named_video(tmp_path, inputs):
    portrait, speech = inputs
    video, summary = make_video(portrait, speech, emotion_spec("sad", 0.5), tmp_path, Runs(), PROCEDURAL, WARP)
    assert video.name == "astronaut_sad_0_50.mp4" and video.is_file()
    assert summary.startswith(f"wrote {video}") and "sad 0.50" in summary
    assert media.probe(video).n_frames >= 49


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def browser_and_url():
    """Headless Chromium and the URL of a freshly served web page."""
    pytest.importorskip("gradio")
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (scripts/install.sh --dev installs it)")
    from emoportrait.ui import serve

    app = serve(port=_free_port(), block=False)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser, app.local_url
        browser.close()
    app.close()


@pytest.fixture
def page(browser_and_url):
    """The page freshly loaded in a new tab."""
    browser, url = browser_and_url
    tab = browser.new_page()
    tab.set_default_timeout(120_000)
    tab.goto(url)
    tab.wait_for_selector("#generate")
    yield tab
    tab.close()


def _upload(page, element: str, *paths: Path) -> None:
    """Choose ``paths`` in the upload field ``element`` and wait until the page holds them."""
    page.locator(f"#{element} input[type=file]").set_input_files([str(p) for p in paths])
    if element == "speech":
        page.wait_for_selector("#speech audio", state="attached")
    else:
        for path in paths:
            page.locator(f"#{element}").get_by_text(path.name).first.wait_for()


def _error_shown(page) -> str:
    toast = page.locator(".toast-body")
    toast.first.wait_for()
    text = toast.first.inner_text()
    page.locator(".toast-close").first.click()  # dismiss it, so the next one is read fresh
    toast.first.wait_for(state="detached")
    return text


def test_the_page_generates_a_playable_video(page, inputs, tmp_path):
    portrait, speech = inputs
    _upload(page, "target", portrait)
    _upload(page, "speech", speech)
    page.locator("#generate").click()
    page.wait_for_function("document.querySelector('#summary textarea').value.startsWith('wrote ')")
    assert "happy 1.00" in page.locator("#summary textarea").input_value()
    source = page.locator("#result video").get_attribute("src")
    assert source
    downloaded = tmp_path / "from_the_page.mp4"
    with urllib.request.urlopen(urllib.parse.urljoin(page.url, source)) as response:
        downloaded.write_bytes(response.read())
    info = media.probe(downloaded)
    assert info.n_frames >= 49 and info.width == 256
    frames = np.stack(list(media.iter_frames(downloaded)))
    assert frames.std(axis=0).max() > 10  # the face moves
    page.screenshot(path=str(tmp_path / "generate.png"))


def test_the_page_shows_input_errors_as_messages(page, inputs, tmp_path):
    portrait, speech = inputs
    page.locator("#generate").click()
    assert "upload a portrait or a video" in _error_shown(page)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    _upload(page, "target", broken)
    _upload(page, "speech", speech)
    page.locator("#generate").click()
    message = _error_shown(page)
    assert "broken.png" in message and "Traceback" not in page.content()
    page.locator("#mixture textarea, #mixture input").first.fill("grumpy:0.5")
    page.locator("#generate").click()
    assert "unknown emotion 'grumpy'" in _error_shown(page)


def test_the_analysis_tab_judges_uploaded_videos(page, inputs, tmp_path):
    portrait, speech = inputs
    video, _ = make_video(portrait, speech, emotion_spec("happy", 1.0), tmp_path)
    named = tmp_path / "M030_happy_level_3_001.mp4"  # a MEAD-style name gives the truth
    shutil.copy(video, named)
    page.get_by_role("tab", name="Analyze").click()
    _upload(page, "videos", named)
    page.locator("#analyze").click()
    page.wait_for_selector("#verdicts :text('accuracy')")
    verdicts = page.locator("#verdicts").inner_text()
    assert "M030_happy_level_3_001.mp4" in verdicts and "happy" in verdicts
    page.wait_for_selector("#plots img")
    assert page.locator("#report a").count() >= 1


def test_ui_command_refuses_a_missing_run_and_a_taken_port(tmp_path, capsys):
    from emoportrait.cli import main

    assert main(["ui", "--weights", str(tmp_path / "no_run")]) == 2
    assert "run '" in capsys.readouterr().err
    pytest.importorskip("gradio")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is taken" in error and "Traceback" not in error
