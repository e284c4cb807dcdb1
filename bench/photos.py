"""ImageNet-sized JPEGs made from scikit-image's bundled colour photographs (no download).

    write_photos(out, count=64, seed=0) -> [paths]

Each file is a random crop (60-100% of each side) of one of the photos, resized (bicubic) so its
longer side is 500 pixels like most ImageNet training images, saved as a baseline JPEG at quality
90 with 4:2:0 chroma subsampling. Deterministic for a seed; an existing complete set is reused.
"""
from __future__ import annotations

from pathlib import Path

PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket")
LONG_SIDE = 500


def _photos():
    import numpy as np
    import skimage.data

    return [np.ascontiguousarray(np.asarray(getattr(skimage.data, name)())[..., :3]) for name in PHOTOS]


def write_photos(out, count: int = 64, seed: int = 0) -> list[Path]:
    import numpy as np
    from PIL import Image

    out = Path(out)
    paths = [out / f"{i:04d}.jpg" for i in range(count)]
    if all(p.is_file() for p in paths):
        return paths
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = _photos()
    for i, path in enumerate(paths):
        pixels = photos[i % len(photos)]
        height, width = pixels.shape[:2]
        h, w = int(height * rng.uniform(0.6, 1.0)), int(width * rng.uniform(0.6, 1.0))
        y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        scale = LONG_SIDE / max(h, w)
        img = Image.fromarray(pixels[y:y + h, x:x + w]).resize((round(w * scale), round(h * scale)), Image.BICUBIC)
        tmp = path.with_suffix(".tmp")
        img.save(tmp, format="JPEG", quality=90, subsampling="4:2:0")
        tmp.replace(path)
    return paths
