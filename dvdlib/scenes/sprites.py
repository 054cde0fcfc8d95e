"""Sprites on a small RGB canvas, as pure functions of a parameter set (an appearance drawn from a
numpy Generator): colours, the four flexible objects (ball, box, ring, bar), buildings (the
landmark role), figures (the character role) and styles that recolour a whole scene. Toy worlds 1
and 2 draw with them; world 1's sizes are the defaults."""

from __future__ import annotations

import colorsys
import zlib

import numpy as np

#: Background of unstyled scenes (RGB in [0, 1]); every object colour contrasts with it.
BACKGROUND = (0.10, 0.10, 0.12)


def as_rng(seed) -> np.random.Generator:
    """A numpy Generator from an int, a sequence of ints, or a Generator (returned as is)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def name_key(name: str) -> int:
    """A stable integer of a name (CRC-32), to seed a named concept's fixed appearances."""
    return zlib.crc32(name.encode())


# ---------------------------------------------------------------- colours

def hsv(h, s, v) -> np.ndarray:
    """RGB float32 of a hue (taken modulo 1), saturation and value."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def bright(rng) -> np.ndarray:
    """A saturated, bright colour (contrasts with the dark background)."""
    return hsv(rng.random(), rng.uniform(0.55, 1.0), rng.uniform(0.7, 1.0))


def distinct_hues(rng, n: int) -> list[float]:
    """``n`` hues spread around the wheel from a random start (each jittered by ±0.08)."""
    start = rng.random()
    return [(start + i / n + rng.uniform(-0.08, 0.08)) % 1.0 for i in range(n)]


# ---------------------------------------------------------------- appearances (parameters)

def building_params(rng, w=(6, 12), body=(8, 13), roof_h=(3, 6)) -> dict:
    """A building (landmark): walls with windows, a door and a roof; three colours. ``w``, ``body``
    and ``roof_h``: the [low, high) ranges of its width, wall height and roof height."""
    wall, roof, window = (hsv(h, rng.uniform(0.4, 0.9), rng.uniform(0.6, 1.0)) for h in distinct_hues(rng, 3))
    return {"w": int(rng.integers(*w)), "body": int(rng.integers(*body)), "roof": str(rng.choice(["spire", "dome", "crenel", "step"])),
            "roof_h": int(rng.integers(*roof_h)), "win_gap": int(rng.integers(2, 4)), "wall": wall, "roof_c": roof, "win": window}


def figure_params(rng, head=(4, 7), body_w=(6, 11), body_h=(4, 7), leg_h=(2, 5)) -> dict:
    """A figure (character): head with eyes, body, arms and legs; four colours. ``head``,
    ``body_w``, ``body_h`` and ``leg_h``: the [low, high) ranges of those sizes."""
    head_c, body_c, eyes, legs = (hsv(h, rng.uniform(0.5, 1.0), rng.uniform(0.65, 1.0)) for h in distinct_hues(rng, 4))
    return {"head": int(rng.integers(*head)), "round": bool(rng.random() < 0.5), "body_w": int(rng.integers(*body_w)),
            "body_h": int(rng.integers(*body_h)), "leg_h": int(rng.integers(*leg_h)), "antenna": bool(rng.random() < 0.5),
            "head_c": head_c, "body_c": body_c, "eye_c": eyes, "leg_c": legs}


def style_params(rng) -> dict:
    """A style: a light textured background and three dark object tones (luminance buckets)."""
    h = rng.random()
    bg = hsv(h, rng.uniform(0.35, 0.8), rng.uniform(0.7, 0.95))
    bg2 = hsv(h + rng.uniform(-0.12, 0.12), rng.uniform(0.3, 0.9), rng.uniform(0.5, 0.7))
    tones = [hsv(t, rng.uniform(0.5, 1.0), v) for t, v in zip(distinct_hues(rng, 3), (0.12, 0.25, 0.38))]
    return {"bg": bg, "bg2": bg2, "tones": tones, "texture": str(rng.choice(["grid", "checker", "stripes", "dots"])),
            "tile": int(rng.integers(2, 5))}


# ---------------------------------------------------------------- drawing

def disc(d: int) -> np.ndarray:
    """Boolean [d, d]: a filled disc of diameter ``d``."""
    r = (np.arange(d) - (d - 1) / 2) ** 2
    return (r[:, None] + r[None, :]) <= (d / 2) ** 2 + 0.25


def draw_object(kind: str, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rgb [h, w, 3], mask [h, w]) of a flexible object: ``"ball"``, ``"box"``, ``"ring"`` or ``"bar"``."""
    if kind == "ball":
        mask = disc(p["d"])
    elif kind == "box":
        mask = np.ones((p["h"], p["w"]), bool)
    elif kind == "ring":
        d, t = p["d"], p["t"]
        inner = np.zeros((d, d), bool)
        inner[t:d - t, t:d - t] = disc(d - 2 * t)
        mask = disc(d) & ~inner
    else:
        n, t = p["len"], p["t"]
        if p["orient"] in "hv":
            mask = np.ones((t, n), bool) if p["orient"] == "h" else np.ones((n, t), bool)
        else:
            i = np.arange(n)
            mask = np.abs(i[:, None] - i[None, :]) < t / 2 + 0.5
            mask = mask if p["orient"] == "d" else mask[:, ::-1]
    return np.broadcast_to(p["colour"], mask.shape + (3,)).copy(), mask


def draw_building(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, mask) of a building (`building_params`)."""
    w, body, rh = p["w"], p["body"], p["roof_h"]
    h = body + rh
    rgb, mask = np.zeros((h, w, 3), np.float32), np.zeros((h, w), bool)
    rgb[rh:], mask[rh:] = p["wall"], True
    gap = p["win_gap"]
    for y in range(rh + 1, h - 3, gap):  # windows
        for x in range(1, w - 1, gap):
            rgb[y, x] = p["win"]
    door = max(1, w // 4)
    x0 = (w - door) // 2
    rgb[h - 3:, x0:x0 + door] = p["roof_c"]
    for y in range(rh):  # the roof, row by row from the top
        if p["roof"] == "spire":
            half = (y + 1) * w / (2 * rh)
        elif p["roof"] == "dome":
            half = w / 2 * np.sqrt(max(0.0, 1 - ((rh - y - 0.5) / rh) ** 2))
        elif p["roof"] == "step":
            half = w / 2 * (1 + y // 2) / (1 + (rh - 1) // 2)
        else:  # crenels: alternating merlons on the top row, a full band below
            half = w / 2
        xs = np.arange(w)
        row = np.abs(xs - (w - 1) / 2) < half
        if p["roof"] == "crenel" and y < rh - 1:
            row &= (xs // 2) % 2 == 0
        rgb[y, row], mask[y, row] = p["roof_c"], True
    return rgb, mask


def draw_figure(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, mask) of a figure (`figure_params`)."""
    hd, bw, bh, lh = p["head"], p["body_w"], p["body_h"], p["leg_h"]
    w = bw + 2  # arms on both sides
    top = 2 if p["antenna"] else 0
    h = top + hd + bh + lh
    rgb, mask = np.zeros((h, w, 3), np.float32), np.zeros((h, w), bool)
    cx = w // 2
    if p["antenna"]:
        rgb[0:2, cx], mask[0:2, cx] = p["eye_c"], True
    x0 = (w - hd) // 2
    head = disc(hd) if p["round"] else np.ones((hd, hd), bool)
    rgb[top:top + hd, x0:x0 + hd][head] = p["head_c"]
    mask[top:top + hd, x0:x0 + hd] |= head
    ey = top + hd // 2 - (1 if hd > 4 else 0)
    rgb[ey, x0 + 1], rgb[ey, x0 + hd - 2] = p["eye_c"], p["eye_c"]
    y0 = top + hd
    rgb[y0:y0 + bh, 1:1 + bw], mask[y0:y0 + bh, 1:1 + bw] = p["body_c"], True
    rgb[y0:y0 + bh - 1, [0, w - 1]], mask[y0:y0 + bh - 1, [0, w - 1]] = p["leg_c"], True  # arms
    for x in (1 + bw // 4, 1 + bw - 1 - bw // 4):  # legs
        rgb[y0 + bh:, x:x + 1], mask[y0 + bh:, x:x + 1] = p["leg_c"], True
    return rgb, mask


def _hue(image: np.ndarray) -> np.ndarray:
    """Hue in [0, 1) of each pixel of an RGB image [h, w, 3]."""
    r, g, b = np.moveaxis(image, -1, 0)
    mx, mn = image.max(-1), image.min(-1)
    c = np.where(mx > mn, mx - mn, 1.0)
    h = np.where(mx == r, (g - b) / c, np.where(mx == g, 2 + (b - r) / c, 4 + (r - g) / c))
    return (h / 6.0) % 1.0


def _texture(p: dict, size: int) -> np.ndarray:
    """Boolean [size, size]: where the style's second background colour goes."""
    y, x = np.mgrid[:size, :size]
    t = p["tile"]
    if p["texture"] == "grid":
        return (y % (t + 1) == t) | (x % (t + 1) == t)
    if p["texture"] == "checker":
        return (y // t + x // t) % 2 == 1
    if p["texture"] == "stripes":
        return (y // t) % 2 == 1
    return (y % (t + 1) == 0) & (x % (t + 1) == 0)


def apply_style(p: dict, image: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Restyle a scene: textured light background; object pixels mapped to the style's three dark
    tones by their hue (a sprite's details survive as tone changes, shapes are untouched)."""
    size = image.shape[0]
    out = np.where(_texture(p, size)[..., None], p["bg2"], p["bg"]).astype(np.float32)
    bucket = np.clip((_hue(image) * 3).astype(int), 0, 2)
    tones = np.stack(p["tones"]).astype(np.float32)
    out[objects] = tones[bucket[objects]]
    if p["texture"] == "grid":  # grout lines run over the objects too, a little lighter
        lines = _texture(p, size) & objects
        out[lines] = out[lines] + 0.1
    return out


# ---------------------------------------------------------------- layout

def apart(a, b, margin=1) -> bool:
    """Whether boxes ``a`` and ``b`` (y, x, h, w) are at least ``margin`` px apart."""
    (ya, xa, ha, wa), (yb, xb, hb, wb) = a, b
    return ya + ha + margin <= yb or yb + hb + margin <= ya or xa + wa + margin <= xb or xb + wb + margin <= xa
