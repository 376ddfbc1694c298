"""analysis: label mapping, video protocols, labels files, the report, analyze end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from emoportrait import media
from emoportrait.analysis import labels, report, run
from emoportrait.analysis.recognizers import RecognizerInfo
from emoportrait.cli import main
from emoportrait.drivers.procedural import ProceduralConfig, ProceduralDriver
from emoportrait.emotions import parse_emotion
from emoportrait.errors import InputError
from emoportrait.pipeline import generate

from .test_generate import RATE, speechlike


# ---------------------------------------------------------------- label mapping

@pytest.mark.parametrize("label_set,emotion,expected", [
    ("fer2013", "disgusted", "disgust"), ("rafdb", "happy", "happiness"), ("rafdb", "contempt", None),
    ("ckplus", "neutral", None), ("ckplus", "sad", "sadness"), ("affectnet8", "contempt", "contempt"),
    ("smic", "happy", "positive"), ("smic", "contempt", "negative"), ("smic", "neutral", None),
    ("smic", "surprised", "surprise"),
])
def test_target_class(label_set, emotion, expected):
    assert labels.target_class(label_set, emotion) == expected


def test_unreachable_emotions_are_explicit():
    assert labels.unreachable("fer2013") == ["contempt"]
    assert labels.unreachable("rafdb") == ["contempt"]
    assert labels.unreachable("ckplus") == ["neutral"]
    assert labels.unreachable("affectnet8") == []
    assert labels.unreachable("smic") == ["neutral"]


def test_every_class_of_every_set_maps_to_a_mead_emotion():
    for name, classes in labels.LABEL_SETS.items():
        if name != "smic":
            reached = {labels.target_class(name, e) for e in labels.EMOTIONS} - {None}
            assert reached == set(classes), name


@pytest.mark.parametrize("path,expected", [
    ("MEAD/M003/video/front/angry/level_3/001.mp4", "angry"),
    ("out/happy_001.mp4", "happy"), ("x/M030_fearful-2.mp4", "fear"), ("clips/001.mp4", None),
])
def test_emotion_from_path(path, expected):
    assert labels.emotion_from_path(path) == expected


# ---------------------------------------------------------------- protocols

def test_video_level_protocols():
    frames = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]])
    np.testing.assert_allclose(run.video_level(frames, "mean"), [0.52, 0.48])
    np.testing.assert_allclose(run.video_level(frames, "vote"), [0.4, 0.6])
    np.testing.assert_allclose(run.video_level(frames, "last3"), [0.3, 0.7])
    with pytest.raises(InputError, match="unknown protocol"):
        run.video_level(frames, "median")


def test_labels_file_problems_are_listed_not_fatal(tmp_path):
    videos = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("video,emotion\na.mp4,happy\nb.mp4,joyful\nc.mp4,sad\n")
    found, problems = run.read_labels(csv_path, videos)
    assert found == {videos[0]: "happy"}
    assert len(problems) == 2 and "unknown emotion 'joyful'" in problems[0] and "'c.mp4'" in problems[1]
    (tmp_path / "bad.csv").write_text("file,label\n")
    with pytest.raises(InputError, match="columns video,emotion"):
        run.read_labels(tmp_path / "bad.csv", videos)


def test_labels_files_from_spreadsheets_are_read_and_binary_ones_refused(tmp_path):
    """A Latin-1 CSV was a UnicodeDecodeError, a binary one a csv.Error (internal errors)."""
    videos = [tmp_path / "café.mp4", tmp_path / "b.mp4"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("video,emotion\ncafé.mp4,happy\nb.mp4\n".encode("latin-1"))
    found, problems = run.read_labels(latin, videos)
    assert found == {videos[0]: "happy"} and len(problems) == 1  # the short row is a problem, not a crash
    bom = tmp_path / "bom.csv"
    bom.write_bytes("video,emotion\r\nb.mp4,sad\r\n".encode("utf-8-sig"))
    assert run.read_labels(bom, videos)[0] == {videos[1]: "sad"}
    binary = tmp_path / "labels.csv"
    binary.write_bytes(b"PK\x03\x04\x00\x00" + bytes(range(256)))
    with pytest.raises(InputError, match="is binary, not a CSV"):
        run.read_labels(binary, videos)


# ---------------------------------------------------------------- report

class _Fixed:
    """A frame recognizer that always prefers one class."""

    def __init__(self, label_set: str, choice: str):
        classes = labels.LABEL_SETS[label_set]
        self.info = RecognizerInfo(f"fixed-{choice}", label_set, classes, "frame", "test")
        self.choice = classes.index(choice)

    def predict(self, crops):
        probabilities = np.full((len(crops), len(self.info.labels)), 0.1)
        probabilities[:, self.choice] = 0.9
        return probabilities / probabilities.sum(axis=1, keepdims=True)


def _result(name: str, truth: str | None, label: str, classes) -> run.VideoResult:
    probabilities = np.eye(len(classes))[classes.index(label)]
    result = run.VideoResult(path=media.Path(name), truth=truth, frames=10, fps=25.0)
    result.predictions["r"] = run.Prediction(label, probabilities, np.tile(probabilities, (10, 1)))
    result.example_crop = np.zeros((112, 112, 3), np.uint8)
    return result


def test_summary_counts_accuracy_recall_and_unreachable():
    classes = labels.LABEL_SETS["fer2013"]
    info = RecognizerInfo("r", "fer2013", classes, "frame", "test")
    results = [_result("1.mp4", "happy", "happy", classes), _result("2.mp4", "happy", "surprise", classes),
               _result("3.mp4", "contempt", "happy", classes), _result("4.mp4", None, "sad", classes)]
    summary = report.summarize(results, info)
    assert summary.videos == 3 and summary.accuracy == pytest.approx(1 / 3)
    assert summary.accuracy_reachable == pytest.approx(1 / 2)
    assert summary.recall["happy"] == 0.5 and summary.recall["contempt"] is None
    assert summary.unreachable == ["contempt"]
    assert summary.confusion[labels.EMOTIONS.index("happy"), classes.index("surprise")] == 1


def test_report_files(tmp_path):
    classes = labels.LABEL_SETS["fer2013"]
    info = RecognizerInfo("r", "fer2013", classes, "frame", "test")
    results = [_result("1.mp4", "happy", "happy", classes), _result("2.mp4", "sad", "happy", classes)]
    report.write_report(results, [info], tmp_path, notes=["a note"])
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["recognizers"][0]["accuracy"] == 0.5 and "FID" in data["not_computed"]
    assert (tmp_path / "confusion_r.png").stat().st_size > 1000
    assert "sad,0.0000,0.0000,0.0000,1.0000" in (tmp_path / "confusion_r.csv").read_text()
    assert (tmp_path / "confusions_r.png").exists() and (tmp_path / "curve_1.png").exists()
    page = (tmp_path / "index.html").read_text()
    assert "a note" in page and "confusion_r.png" in page and "Cannot output: contempt" in page


# ---------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def generated_videos(tmp_path_factory, close_portrait):
    folder = tmp_path_factory.mktemp("generated")
    speech = folder / "speech.wav"
    soundfile.write(speech, speechlike(1.6, active=((0.1, 1.4),)), RATE)
    portrait = folder / "portrait.png"
    media.write_image(portrait, close_portrait)
    videos = folder / "videos"
    loudness_driven = ProceduralDriver(ProceduralConfig(mouth="spectral"))  # what the loudness score rewards
    for emotion in ("happy", "surprised"):
        generate(speech, parse_emotion(emotion), portrait, videos / f"{emotion}_001.mp4", driver=loudness_driven)
    return videos


def test_analyze_command_writes_the_report(tmp_path, capsys, generated_videos):
    out = tmp_path / "report"
    broken = generated_videos.parent / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "angry_002.mp4").write_bytes(b"\x00" * 100)
    code = main(["analyze", str(generated_videos), str(broken), "--report", str(out), "--keep-going"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "skipped" in captured.err and "angry_002.mp4" in captured.err
    data = json.loads((out / "results.json").read_text())
    videos = {record["video"].rsplit("/", 1)[-1]: record for record in data["videos"]}
    assert videos["happy_001.mp4"]["predictions"]["mini-xception (FER2013)"]["label"] == "happy"
    assert videos["happy_001.mp4"]["loudness_following"]["correlation"] > 0.3
    assert videos["angry_002.mp4"]["error"]  # reported, not fatal
    assert (out / "index.html").exists() and (out / "confusion_mini_xception_fer2013.png").exists()
    assert "accuracy" in captured.out
    assert "ground truth: 3 from emotion names in the file paths" in captured.out  # said, not silently assumed


def test_analyze_fails_when_videos_fail_unless_asked_to_keep_going(tmp_path, capsys, generated_videos):
    broken = tmp_path / "angry_002.mp4"
    broken.write_bytes(b"\x00" * 100)
    assert main(["analyze", str(broken), "--report", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # on its own line, after the progress bar
    assert last.startswith("emoportrait: error:") and "none of the 1 video(s) could be analysed" in last
    assert not (tmp_path / "none").exists()
    code = main(["analyze", str(generated_videos / "happy_001.mp4"), str(broken), "--report", str(tmp_path / "r")])
    captured = capsys.readouterr()
    assert code == 2 and "1 of 2 videos could not be analysed" in captured.err and "--keep-going" in captured.err
    assert (tmp_path / "r" / "index.html").exists()  # the report of what could be analysed is kept


def test_analyze_bad_inputs(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "none"), "--report", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["analyze", str(tmp_path / "empty"), "--report", str(tmp_path / "r")]) == 2
    assert "no videos" in capsys.readouterr().err
    (tmp_path / "report.html").write_text("")
    assert main(["analyze", str(tmp_path / "empty"), "--report", str(tmp_path / "report.html")]) == 2
    assert "output folder" in capsys.readouterr().err  # found before any video is read


def test_train_mer_then_analyze_with_it(tmp_path, capsys, generated_videos):
    from .test_recognizer_training import make_smic

    root = make_smic(tmp_path / "smic")
    out = tmp_path / "runs" / "stcnn"
    assert main(["train", "mer", "--model", "stcnn", "--dataset", "smic", str(root), "--out", str(out),
                 "--epochs", "1", "--batch", "4"]) == 0
    assert "use it with: emoportrait analyze VIDEOS --mer" in capsys.readouterr().out
    report_dir = tmp_path / "report"
    assert main(["analyze", str(generated_videos), "--no-default-fer", "--mer", str(out / "best"),
                 "--report", str(report_dir)]) == 0
    data = json.loads((report_dir / "results.json").read_text())
    (recognizer,) = data["recognizers"]
    assert recognizer["label_set"] == "smic" and recognizer["unreachable"] == ["neutral"]
    assert recognizer["videos"] == 2


def test_train_with_a_wrong_dataset_root_is_one_line(tmp_path, capsys):
    assert main(["train", "fer", "--model", "dan", "--dataset", "rafdb", str(tmp_path), "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emoportrait: error: ") and "\n" not in err


def test_frechet_distance_known_cases():
    from emoportrait.analysis.fid import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + [2.0, 0.0, 0.0]) == pytest.approx(4.0, abs=1e-6)  # mean shift only
    assert frechet_distance(a, 2 * a) == pytest.approx(3.0, rel=0.05)  # trace: 1 + 4 - 2*2 per dim


def test_fid_hook_with_a_user_torchscript_model(tmp_path, capsys, generated_videos):
    import torch

    class Features(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)

    model = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(Features()), str(model))
    references = tmp_path / "refs"
    references.mkdir()
    for video in generated_videos.iterdir():
        (references / video.name).write_bytes(video.read_bytes())
    report_dir = tmp_path / "report"
    assert main(["analyze", str(generated_videos), "--reference", str(references), "--fid-model", str(model),
                 "--report", str(report_dir)]) == 0
    data = json.loads((report_dir / "results.json").read_text())
    assert data["dataset_metrics"]["FID"] == pytest.approx(0.0, abs=1e-3)
    assert "FID" not in data["not_computed"]
    assert data["videos"][0]["comparison"]["ssim"] > 0.99
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["analyze", str(generated_videos), "--reference", str(references), "--fid-model",
                 str(tmp_path / "junk.pt"), "--report", str(report_dir)]) == 2
    assert "is not a TorchScript module" in capsys.readouterr().err


def test_sync_scores_find_the_offset():
    from emoportrait.analysis.syncnet import sync_scores

    rng = np.random.default_rng(0)
    sound = rng.standard_normal((60, 8))
    late = np.roll(sound, 3, axis=0)    # video window i shows audio window i - 3: the video lags
    scores = sync_scores(late[:50], sound[:50])
    assert scores.offset_frames == 3 and scores.lse_c > 1.0   # the public evaluator's sign
    assert sync_scores(np.roll(sound, -2, axis=0)[:50], sound[:50]).offset_frames == -2


def test_syncnet_hook_with_a_user_torchscript_model(tmp_path, generated_videos):
    import torch

    class TinySync(torch.nn.Module):
        def forward(self, x):
            return x

        @torch.jit.export
        def forward_lip(self, video):
            return video.mean(dim=(1, 3, 4))

        @torch.jit.export
        def forward_aud(self, sound):
            return sound.mean(dim=(1, 2))[:, :5]

    model = tmp_path / "sync.pt"
    torch.jit.save(torch.jit.script(TinySync()), str(model))
    report_dir = tmp_path / "report"
    assert main(["analyze", str(generated_videos), "--syncnet-model", str(model), "--report", str(report_dir)]) == 0
    data = json.loads((report_dir / "results.json").read_text())
    assert set(data["videos"][0]["syncnet"]) == {"lse_d", "lse_c", "offset_frames"}
    assert "LSE-D" in data["dataset_metrics"] and "LSE-C/LSE-D" not in data["not_computed"]


def test_syncnet_inputs_follow_the_public_evaluator(tmp_path):
    import python_speech_features
    import torch

    from emoportrait.analysis.syncnet import SyncNetHook

    class Probe(torch.nn.Module):
        def forward(self, x):
            return x

        @torch.jit.export
        def forward_lip(self, video):
            return video[:, :, 0].mean(dim=(2, 3))           # (B, 3): channel means of the first crop

        @torch.jit.export
        def forward_aud(self, sound):
            return sound[:, 0, :, 0]                          # (B, 13): the window's first MFCC step

    path = tmp_path / "probe.pt"
    torch.jit.save(torch.jit.script(Probe()), str(path))
    crops = np.zeros((40, 224, 224, 3), np.uint8)
    crops[..., 0], crops[..., 1], crops[..., 2] = 200, 100, 10  # RGB
    speech = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(1.4 * 16000)) / 16000)).astype(np.float32)  # 35 frames
    video, sound = SyncNetHook(path).embeddings(crops, speech, 25.0)
    assert len(video) == len(sound) == 35 - 5                # min(frames, speech frames) - 5 windows
    np.testing.assert_allclose(video[0], [10, 100, 200])      # BGR, 0-255
    expected = python_speech_features.mfcc(speech.astype(np.float64) * 32768.0, 16000)
    np.testing.assert_allclose(sound[1], expected[4], rtol=1e-4, atol=1e-3)   # window 1 starts at step 4


def test_find_videos_skips_hidden_files_and_folders(tmp_path):
    for name in ("a.mp4", "._a.mp4", ".cache/b.mp4", "sub/c.mov"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in run.find_videos([tmp_path])] == ["a.mp4", "sub/c.mov"]
