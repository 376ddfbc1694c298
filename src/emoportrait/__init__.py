"""emoportrait: audio-driven emotional video portraits (EVP, Ji et al., CVPR 2021).

Stages, each usable alone (see ``DESIGN.md`` of the project for the data flow):

- :mod:`emoportrait.media`    read frames + audio from any video, write H.264/AAC mp4
- :mod:`emoportrait.audio`    16 kHz audio, EVP MFCC windows, loudness/silence, DTW
- :mod:`emoportrait.face`     MediaPipe face mesh tracking, landmark groups, smoothing
- :mod:`emoportrait.geometry` similarity pose, reference face, frontalisation, projection
"""

__version__ = "0.1.0"
