"""Phone timing of speech, from the US-English models that ship inside pocketsphinx.

:func:`recognise_phones` turns 16 kHz speech into a sequence of ARPAbet phones with
their start and end times. It tries, in order:

1. **words**: large-vocabulary recognition with pocketsphinx's n-gram language model
   (narrow beams: about 0.1x real time on one core), then a forced alignment of the
   recognised words to their dictionary phones. The phones are those of real English
   words, so /p b m/ and /f v/ are where the dictionary puts them.
2. **phone loop** (pocketsphinx's *allphone* search with its phone n-gram): used when
   the word alignment fails or is implausible. It does not need the words to be
   English, so it also follows the syllables of other languages.

Each result is checked (:func:`_plausible`): speech of a real talker yields 6-15
phones per second of speech and no phone much longer than half a second. Music,
noise, or speech the models cannot follow fail that check; then
:class:`RecognitionFailed` is raised and callers fall back to acoustic features.

Measured on real speech in ``shared/media`` (2-core CPU): 0.10-0.17x real time for
words + alignment, 0.07x for the phone loop. The decoders are built once per process
(about 0.4 s, loading the 27 MB language model). :func:`prefetch` runs it all in a
worker process while the caller does other work.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from .audio import silence_mask

SILENCE = "SIL"
"""Label of silence, breath and noise segments."""

PHONES = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
          "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
          "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH", SILENCE)
"""The phone set of pocketsphinx's en-us model (ARPAbet without stress), and silence."""

_SAMPLE_RATE = 16000
_FRAMES_PER_SECOND = 100  # pocketsphinx's frame rate
# Word search: narrow beams, no second (flat-lexicon) pass; measured on shared/media
# speech to keep the recognised phones while running 2-3x faster than the defaults.
_WORD_SEARCH = {"beam": 1e-35, "wbeam": 1e-25, "maxhmmpf": 3000, "maxwpf": 5, "fwdflat": False}
_MAX_PENDING = 4           # prefetch workers left running at most
_WORKER_TIMEOUT_S = 60.0   # a prefetch worker later than this plus the speech's duration is given up
_PHONE_LOOP_WEIGHT = 2.0   # language weight of the phone n-gram (1 under-segments, 2 follows syllables)


class RecognitionFailed(Exception):
    """No plausible phone sequence could be recognised; ``str(exc)`` says why."""


@dataclass(frozen=True)
class Phone:
    """One phone: its ARPAbet label (see :data:`PHONES`) and its time span in seconds."""

    label: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class PhoneTiming:
    """The phones of an utterance, covering it from 0 s without gaps or overlaps.

    Attributes:
        phones: in time order.
        method: ``"words"`` or ``"phone loop"`` (see the module docstring).
        text: the recognised words (empty for the phone loop).
    """

    phones: tuple[Phone, ...]
    method: str
    text: str = ""

    def describe(self) -> str:
        """A short summary such as ``words 'hello world' (9.8 phones/s)``."""
        spoken = [p for p in self.phones if p.label != SILENCE]
        duration = sum(p.end_s - p.start_s for p in spoken)
        rate = len(spoken) / duration if duration else 0.0
        words = self.text if len(self.text) <= 60 else self.text[:57].rsplit(" ", 1)[0] + " ..."
        text = f" '{words}'" if words else ""
        return f"{self.method}{text} ({rate:.1f} phones/s)"


@dataclass(frozen=True)
class PhoneConfig:
    """Plausibility limits of a recognised phone sequence."""

    min_rate: float = 6.0             # phones per second of speech (talkers: 8-12; music: 2-5)
    max_phone_s: float = 0.6          # longest phone inside speech (vowels rarely pass 0.3 s)
    min_coverage: float = 0.7         # share of the non-silent frames covered by phones


def _model_path(*parts: str) -> str:
    spec = find_spec("pocketsphinx")
    if spec is None or spec.origin is None:
        raise RecognitionFailed("pocketsphinx is not installed (pip install pocketsphinx)")
    return str(Path(spec.origin).parent.joinpath("model", "en-us", *parts))


@lru_cache(maxsize=None)
def _decoder(kind: str):
    """A pocketsphinx decoder, built once: ``"words"``, ``"align"`` or ``"phone loop"``."""
    from pocketsphinx import Decoder

    settings: dict = {"samprate": _SAMPLE_RATE, "loglevel": "FATAL"}
    if kind == "words":
        settings.update(_WORD_SEARCH)
    elif kind == "phone loop":
        settings.update(allphone=_model_path("en-us-phone.lm.bin"), lw=_PHONE_LOOP_WEIGHT)
    return Decoder(**settings)


def _decode(decoder, pcm: bytes) -> None:
    """Decode one utterance from a fresh feature state: pocketsphinx otherwise carries its
    cepstral mean over from the previous utterance, so results would depend on history."""
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _label(name: str) -> str:
    """ARPAbet label of a pocketsphinx phone or filler (fillers and silence: SIL)."""
    name = name.upper()
    return name if name in PHONES else SILENCE


def _recognise_words(pcm: bytes) -> PhoneTiming:
    decoder = _decoder("words")
    _decode(decoder, pcm)
    hypothesis = decoder.hyp()
    text = hypothesis.hypstr.strip() if hypothesis is not None else ""
    if not text:
        raise RecognitionFailed("no words recognised")
    aligner = _decoder("align")
    try:
        aligner.set_align_text(text)
        _decode(aligner, pcm)
        aligner.set_alignment()
        _decode(aligner, pcm)
        alignment = aligner.get_alignment()
    except RuntimeError as exc:
        raise RecognitionFailed(f"the recognised words could not be aligned ({exc})") from None
    finally:
        aligner.activate_search()  # back to the n-gram search for the next utterance
    phones = [Phone(_label(phone.name), phone.start / _FRAMES_PER_SECOND,
                    (phone.start + phone.duration) / _FRAMES_PER_SECOND)
              for word in alignment for phone in word]
    return PhoneTiming(tuple(phones), "words", text)


def _recognise_phone_loop(pcm: bytes) -> PhoneTiming:
    decoder = _decoder("phone loop")
    _decode(decoder, pcm)
    phones = [Phone(_label(segment.word), segment.start_frame / _FRAMES_PER_SECOND,
                    (segment.end_frame + 1) / _FRAMES_PER_SECOND) for segment in decoder.seg()]
    return PhoneTiming(tuple(phones), "phone loop")


def _plausible(timing: PhoneTiming, silent: np.ndarray, config: PhoneConfig) -> None:
    """Raise :class:`RecognitionFailed` unless ``timing`` looks like a talker's phones.

    ``silent``: ``(F,)`` bool per 10 ms frame of the utterance.
    """
    spoken = [p for p in timing.phones if p.label != SILENCE]
    speech_s = float((~silent).sum()) / _FRAMES_PER_SECOND
    if not spoken or speech_s == 0:
        raise RecognitionFailed(f"{timing.method}: no phones recognised")
    covered = np.zeros(len(silent), bool)
    for phone in spoken:
        covered[round(phone.start_s * _FRAMES_PER_SECOND):round(phone.end_s * _FRAMES_PER_SECOND)] = True
    rate = len(spoken) / speech_s
    coverage = float((covered & ~silent).sum()) / float((~silent).sum())
    longest = max(p.end_s - p.start_s for p in spoken)
    if rate < config.min_rate or coverage < config.min_coverage or longest > config.max_phone_s:
        raise RecognitionFailed(
            f"{timing.method}: {rate:.1f} phones/s of speech, {100 * coverage:.0f}% of it covered, "
            f"longest phone {longest:.2f} s (speech gives at least {config.min_rate:g}/s, "
            f"{100 * config.min_coverage:.0f}% and at most {config.max_phone_s:g} s)")


def _candidates(pcm: bytes) -> Iterator[PhoneTiming | str]:
    """The words' phones, then the phone loop's (computed when asked): each a
    :class:`PhoneTiming`, or the reason it could not be made."""
    for recognise in (_recognise_words, _recognise_phone_loop):
        try:
            yield recognise(pcm)
        except RecognitionFailed as exc:
            yield str(exc)


def _first_plausible(samples: np.ndarray, candidates: Iterable[PhoneTiming | str], config: PhoneConfig
                     ) -> PhoneTiming:
    """The first candidate that passes :func:`_plausible`; else :class:`RecognitionFailed`."""
    frames = max(1, int(np.ceil(len(samples) * _FRAMES_PER_SECOND / _SAMPLE_RATE)))
    silent = silence_mask(samples, _FRAMES_PER_SECOND, n_frames=frames)
    reasons = []
    for candidate in candidates:
        try:
            if isinstance(candidate, str):
                raise RecognitionFailed(candidate)
            _plausible(candidate, silent, config)
            return candidate
        except RecognitionFailed as exc:
            reasons.append(str(exc))
    raise RecognitionFailed("; ".join(reasons))


def _pcm(samples: np.ndarray) -> bytes:
    """16-bit little-endian PCM of ``(S,)`` float samples in [-1, 1]."""
    return (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _key(samples: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(samples, dtype=np.float32).tobytes()).hexdigest()


def prefetch(samples: np.ndarray) -> None:
    """Start recognising ``samples`` in a worker, so it runs while other work goes on
    (:func:`emoportrait.pipeline.generate` tracks a target video meanwhile); the next
    :func:`recognise_phones` of the same samples takes its result.

    The worker is a bare fork of this process that only runs pocketsphinx's decoders
    (built here first, once) and writes their phones to a pipe: no thread pool, no
    queue, no numpy, so nothing it inherits can block it; if it fails or takes longer
    than ``_WORKER_TIMEOUT_S`` plus the speech's duration, recognition runs here
    instead. Linux only: elsewhere nothing is started.
    """
    key = _key(samples)
    if key in _PENDING or sys.platform != "linux":
        return
    while len(_PENDING) >= _MAX_PENDING:  # results never asked for (the caller failed): reap the oldest
        _collect(*_PENDING.pop(next(iter(_PENDING))))
    for kind in ("words", "align", "phone loop"):
        _decoder(kind)
    pcm = _pcm(samples)
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns of forking with threads: the child needs none
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the worker
        status = 1
        try:
            os.close(read_end)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(json.dumps([_plain(item) for item in _candidates(pcm)]).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    _PENDING[key] = (pid, read_end, _WORKER_TIMEOUT_S + len(samples) / _SAMPLE_RATE)


_PENDING: dict[str, tuple[int, int, float]] = {}


def _plain(item: PhoneTiming | str) -> dict | str:
    """A candidate as JSON-ready data (see :func:`_candidates`)."""
    if isinstance(item, str):
        return item
    return {"method": item.method, "text": item.text,
            "phones": [[phone.label, phone.start_s, phone.end_s] for phone in item.phones]}


def _collect(pid: int, pipe_end: int, timeout_s: float) -> list[PhoneTiming | str] | None:
    """The candidates a :func:`prefetch` worker wrote, or None if it failed or did not
    finish within ``timeout_s``."""
    chunks, deadline = [], time.monotonic() + timeout_s
    try:
        while True:
            ready, _, _ = select.select([pipe_end], [], [], max(deadline - time.monotonic(), 0.0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                return None
            chunk = os.read(pipe_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(pipe_end)
        _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    try:
        return [item if isinstance(item, str) else PhoneTiming(
            tuple(Phone(*phone) for phone in item["phones"]), item["method"], item["text"])
            for item in json.loads(b"".join(chunks))]
    except (ValueError, KeyError, TypeError):
        return None


def recognise_phones(samples: np.ndarray, config: PhoneConfig = PhoneConfig()) -> PhoneTiming:
    """The phones of ``samples`` with their times (see the module docstring).

    Args:
        samples: ``(S,)`` float mono speech at 16 kHz, in [-1, 1].
        config: Plausibility limits.

    Returns:
        The first plausible :class:`PhoneTiming`: from words, else from the phone loop.

    Raises:
        RecognitionFailed: neither gave a plausible result (music, noise, no speech);
            the message gives both reasons.
    """
    samples = np.asarray(samples, dtype=np.float32)
    pending = _PENDING.pop(_key(samples), None)
    candidates = _collect(*pending) if pending is not None else None
    if candidates is None:  # not prefetched, or the worker failed: here, lazily
        candidates = _candidates(_pcm(samples))
    return _first_plausible(samples, candidates, config)
