"""analysis.sheets: contact sheets of face crops."""

from __future__ import annotations

import numpy as np

from emoportrait import face, media
from emoportrait.analysis.sheets import contact_sheet, crop, region_box, write_sheet


def test_crops_follow_the_face_and_sheets_stack_rows(tmp_path, portrait):
    landmarks = face.track_frames([portrait], fps=None).landmarks[0]
    face_box, mouth_box = region_box(landmarks, "face"), region_box(landmarks, "mouth")
    assert mouth_box[2] < face_box[2]
    centre = landmarks[face.GROUPS["lips"], :2].mean(axis=0)
    assert np.all(np.abs(mouth_box[:2] + mouth_box[2] / 2 - centre) < 0.2 * mouth_box[2])
    cell = crop(portrait, face_box, 64)
    assert cell.shape == (64, 64, 3) and cell.std() > 10
    outside = crop(portrait, np.array([10_000.0, 10_000.0, 50.0]), 32)
    assert not outside.any()
    sheet = contact_sheet([[cell, cell, cell], [cell]], [["a", "b", "c"], ["d"]])
    assert sheet.shape == (2 * 66, 3 * 66, 3)
    path = write_sheet(tmp_path / "sheets" / "s.png", [[cell]])
    assert media.read_image(path).shape == (66, 66, 3)
