"""Face: MediaPipe dense landmark tracking, named landmark groups, temporal clean-up.

Landmarks are ``(T, 478, 3)`` float32 in pixels of the source frame (x right,
y down, z depth scaled like x). See :mod:`.tracker`, :mod:`.landmarks`,
:mod:`.smoothing` and :mod:`.reference`.
"""

from .landmarks import (
    GROUPS, IBUG68, N_LANDMARKS, RIGID, face_size, group, inner_mouth_opening, rigid_radius, to_ibug68,
)
from .tracker import FaceTrack, TrackerConfig, smoothed, track_file, track_frames

__all__ = [
    "GROUPS", "IBUG68", "N_LANDMARKS", "RIGID", "FaceTrack", "TrackerConfig",
    "face_size", "group", "inner_mouth_opening", "rigid_radius", "smoothed", "to_ibug68", "track_file",
    "track_frames",
]
