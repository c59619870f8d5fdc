"""Make the precision gate's calibration frames (trt_modnet/graph/calibration/*.jpg) from the shared
public-domain portraits: faces, hair, a hand and busy backgrounds, each 256x256.

    python -m benchmarks.make_calibration

Only public-domain sources (../shared/data/SOURCES.md): NASA's astronaut (scikit-image) and the official
White House photos (US government works), so the derived frames can ship in the package.
"""

from __future__ import annotations

from pathlib import Path

import cv2

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "portraits"
OUT = Path(__file__).resolve().parents[1] / "trt_modnet" / "graph" / "calibration"
SIZE = 256
#: (output name, source, crop as y0, y1, x0, x1 in the source's pixels), chosen by looking at the images.
CROPS = [
    ("astronaut_full", "astronaut.png", 0, 512, 0, 512),  # face, suit, flag and shuttle behind
    ("astronaut_face", "astronaut.png", 0, 260, 60, 320),  # hair edge over a busy background
    ("obama_full", "obama.jpg", 0, 910, 0, 910),  # head and shoulders, flags behind
    ("obama_hair", "obama.jpg", 60, 460, 255, 655),  # hairline against the background
    ("biden_top", "biden.jpg", 0, 970, 0, 970),  # head, arms crossed, curtains behind
    ("biden_hand", "biden.jpg", 1000, 1500, 235, 735),  # a hand against the suit and background
]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, source, y0, y1, x0, x1 in CROPS:
        image = cv2.imread(str(SHARED / source))[y0:y1, x0:x1]
        small = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(OUT / f"{name}.jpg"), small, [cv2.IMWRITE_JPEG_QUALITY, 92])


if __name__ == "__main__":
    main()
