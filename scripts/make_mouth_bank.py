"""Recipe of the bundled teeth strip, src/emoportrait/data/astronaut_teeth.npz.

The strip is cut from scikit-image's astronaut portrait (Eileen Collins, NASA
photograph S95-00786, public domain; shipped with scikit-image as
``skimage.data.astronaut``): her upper teeth in the mouth coordinates of
:mod:`emoportrait.render.mouth`, with the lighting (skin, whites of the eyes) that colour
matching starts from. Already committed; rerun only to change it:

    .venv/bin/python scripts/make_mouth_bank.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data

from emoportrait.face import track_frames
from emoportrait.render.mouth import BUNDLED_STRIP, MouthConfig, face_light, teeth_strip

SOURCE = ("scikit-image's astronaut portrait (skimage.data.astronaut: Eileen Collins, "
          "NASA photograph S95-00786, public domain)")


def main() -> None:
    portrait = skimage.data.astronaut()
    landmarks = track_frames([portrait], fps=None).landmarks[0]
    strip = teeth_strip(portrait, landmarks, MouthConfig())
    if strip is None:
        raise SystemExit("the astronaut's teeth were not found; check the tracker")
    light = face_light(portrait, landmarks)
    path = Path(__file__).resolve().parents[1] / "src" / "emoportrait" / "data" / BUNDLED_STRIP
    np.savez_compressed(path, texture=np.round(strip.texture).astype(np.uint8),
                        valid=np.round(255 * strip.valid).astype(np.uint8) / 255.0,
                        depth=strip.depth, skin_mean=light.skin_mean, skin_std=light.skin_std,
                        white=light.white, source=SOURCE)
    print(f"wrote {path} ({path.stat().st_size} bytes) from {SOURCE}")


if __name__ == "__main__":
    main()
