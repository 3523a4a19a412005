"""PNG grids of images with captions, because people would rather look than read."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


#: The most images one PNG grid holds (8 x 128 tiles); ``zoo generate -n`` is refused above it.
MAX_GRID_IMAGES = 1024


def check_grid_size(n) -> int:
    """``n`` if one grid can hold that many images, else a :class:`ConfigError`."""
    from zoo.errors import ConfigError

    if not 1 <= int(n) <= MAX_GRID_IMAGES:
        raise ConfigError(f"-n must be in 1..{MAX_GRID_IMAGES} for one PNG grid, got {n}; "
                          f"run several times with different --seed for more")
    return int(n)


def image_grid(images, captions=None, *, ncols=8, scale=None, colors=None):
    """Tile a batch of images in [0, 1] (N, H, W, C) into one ``PIL.Image`` with optional captions.

    ``colors`` gives one RGB tuple per caption (e.g. green for right, red for wrong).
    """
    from PIL import Image, ImageDraw

    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    if scale is None:
        scale = max(1, 56 // max(h, w))
    tile_h, tile_w = h * scale, w * scale
    caption_h = 12 if captions is not None else 0
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    pad = 2
    sheet = Image.new("RGB", (ncols * (tile_w + pad) + pad, nrows * (tile_h + caption_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        pixels = (np.clip(images[i], 0, 1) * 255).astype(np.uint8)
        pixels = np.repeat(pixels, 3, axis=-1) if c == 1 else pixels[..., :3]
        tile = Image.fromarray(pixels, "RGB").resize((tile_w, tile_h), Image.NEAREST)
        x0 = pad + (i % ncols) * (tile_w + pad)
        y0 = pad + (i // ncols) * (tile_h + caption_h + pad)
        sheet.paste(tile, (x0, y0))
        if captions is not None:
            color = colors[i] if colors is not None else (0, 0, 0)
            draw.text((x0, y0 + tile_h), str(captions[i])[: max(1, tile_w // 6)], fill=color)
    return sheet


def save_png(image, path) -> Path:
    """Save a ``PIL.Image`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
