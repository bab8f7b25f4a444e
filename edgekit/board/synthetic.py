"""Synthetic street scenes labelled with the Cityscapes train ids, for machines that have no dataset.

A scene is a small 3-D world (a straight or gently curving road, sidewalks, facades, trees, poles with signs and
traffic lights, cars and people) seen through a pinhole camera 1.5 m above the road, drawn far-to-near with
OpenCV polygons into the image and the label map at once, so labels are pixel-exact. The same world rendered
with the camera moved forward gives a driving video. Everything is deterministic from the seed and fast on a CPU
(a few milliseconds at 1024x512), so tests, the demo and training can generate scenes on the fly.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from edgekit.board import events
from edgekit.errors import EdgekitError

# Cityscapes train ids (cityscapesscripts' label table); only the ones the generator draws.
ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_SIGN = 0, 1, 2, 5, 7
VEGETATION, TERRAIN, SKY, PERSON, CAR = 8, 9, 10, 11, 13
IGNORE = 255
DRAWN_TRAIN_IDS = (ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR)
# Typical facade and car paints (BGR): class colours stay plausible, so colour is a cue as in real streets.
FACADES = ((170, 190, 210), (120, 130, 140), (60, 80, 150), (200, 210, 220), (150, 150, 150), (110, 140, 190))
PAINTS = ((240, 240, 240), (30, 30, 30), (150, 150, 155), (40, 40, 170), (150, 80, 30), (190, 190, 195))

CAMERA_HEIGHT = 1.5  # metres above the road
NEAR, FAR = 1.2, 250.0  # metres: what the camera draws
Colour = Tuple[int, int, int]


@dataclass
class _Canvas:
    """The image and label being drawn, with the camera that projects world points (x right, y up, z ahead)."""

    image: np.ndarray
    label: np.ndarray
    focal: float
    cx: float
    horizon: float
    road_center: Callable[[float], float]

    def project(self, x: float, y: float, z: float) -> Tuple[float, float]:
        """World point relative to the road centre at depth z -> pixel (u, v)."""
        z = max(z, NEAR)
        return self.cx + self.focal * (x + self.road_center(z)) / z, self.horizon + self.focal * (CAMERA_HEIGHT - y) / z

    def poly(self, points: List[Tuple[float, float]], colour: Colour, train_id: Optional[int]) -> None:
        pts = np.asarray(points).clip(-1e5, 1e5).astype(np.int32)
        cv2.fillPoly(self.image, [pts], colour, lineType=cv2.LINE_AA)
        if train_id is not None:
            cv2.fillPoly(self.label, [pts], train_id)

    def world_poly(self, points: Sequence[Tuple[float, float, float]], colour: Colour, train_id: Optional[int]) -> None:
        self.poly([self.project(*p) for p in points], colour, train_id)

    def box(
        self, x0: float, x1: float, y0: float, y1: float, z: float, colour: Colour, train_id: Optional[int]
    ) -> None:
        """An upright rectangle facing the camera at depth z."""
        self.world_poly([(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)], colour, train_id)

    def disc(self, x: float, y: float, z: float, radius: float, colour: Colour, train_id: Optional[int]) -> None:
        u, v = self.project(x, y, z)
        r = max(1, round(self.focal * radius / max(z, NEAR)))
        centre = (round(u), round(v))
        cv2.circle(self.image, centre, r, colour, -1, lineType=cv2.LINE_AA)
        if train_id is not None:
            cv2.circle(self.label, centre, r, train_id, -1)

    def ellipse(
        self, x: float, y: float, z: float, rx: float, ry: float, colour: Colour, train_id: Optional[int]
    ) -> None:
        u, v = self.project(x, y, z)
        axes = (max(1, round(self.focal * rx / z)), max(1, round(self.focal * ry / z)))
        cv2.ellipse(self.image, (round(u), round(v)), axes, 0, 0, 360, colour, -1, lineType=cv2.LINE_AA)
        if train_id is not None:
            cv2.ellipse(self.label, (round(u), round(v)), axes, 0, 0, 360, train_id, -1)


Drawer = Callable[[_Canvas, float], None]  # draws itself at a depth relative to the camera


@dataclass
class _Thing:
    """One object of the world at depth z (metres along the road); drawn far-to-near."""

    z: float
    draw: Drawer


@dataclass
class _World:
    road_half_width: float
    sidewalk_width: float
    curvature: float  # lateral offset of the road centre = curvature * z**2 (metres)
    lateral_offset: float  # camera offset from the road centre
    verge_id: int  # what lies between the sidewalk and the facades: terrain or more sidewalk
    colours: Dict[str, Colour]
    sky_top: Colour
    sky_bottom: Colour
    things: List[_Thing] = field(default_factory=list)
    backdrop: List[_Thing] = field(default_factory=list)  # facades: always behind the street furniture
    lane_offsets: Tuple[float, ...] = ()
    lighting: Tuple[float, float, float, float] = (1.0, 0.0, 0.0, 4.0)  # gain, bias, colour cast, noise sigma


def _jitter(rng: np.random.Generator, colour: Colour, amount: int = 18) -> Colour:
    c = np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def _shade(colour: Colour, factor: float) -> Colour:
    return int(colour[0] * factor), int(colour[1] * factor), int(colour[2] * factor)


def _random_colour(rng: np.random.Generator, low: int = 20, high: int = 235) -> Colour:
    c = rng.integers(low, high, 3)
    return int(c[0]), int(c[1]), int(c[2])


def _sample_world(rng: np.random.Generator, length: float) -> _World:
    """A street `length` metres long (plus what is visible beyond it) with random furniture and traffic."""
    lanes = int(rng.integers(1, 3))  # lanes per direction
    half = lanes * float(rng.uniform(3.0, 3.6))
    grey = int(rng.integers(70, 125))
    colours = {
        "road": _jitter(rng, (grey, grey, grey + 4), 8),
        "sidewalk": _jitter(rng, (150, 155, 160), 25),
        "terrain": _jitter(rng, (80, 165, 175), 20),  # dry grass: khaki, unlike the dark green of trees
        "kerb": _jitter(rng, (190, 190, 195), 15),
    }
    overcast = rng.random() < 0.35
    world = _World(
        road_half_width=half,
        sidewalk_width=float(rng.uniform(2.0, 4.5)),
        curvature=float(rng.uniform(-4e-4, 4e-4)),
        lateral_offset=float(rng.uniform(-0.4, 0.4) * half),
        verge_id=TERRAIN if rng.random() < 0.5 else SIDEWALK,
        colours=colours,
        sky_top=_jitter(rng, (200, 200, 200) if overcast else (210, 140, 80), 20),
        sky_bottom=_jitter(rng, (225, 225, 225) if overcast else (245, 215, 185), 12),
        lane_offsets=tuple(sorted({0.0, *(float(k * half / lanes) for k in range(-lanes + 1, lanes) if k)})),
        lighting=(
            float(rng.uniform(0.65, 1.25)),
            float(rng.uniform(-15, 15)),
            float(rng.uniform(-12, 12)),
            float(rng.uniform(2.0, 7.0)),
        ),
    )
    _add_facades(rng, world, length)
    _add_furniture(rng, world, length)
    _add_traffic(rng, world, length)
    world.things.sort(key=lambda t: -t.z)
    world.backdrop.sort(key=lambda t: -t.z)
    return world


def _add_facades(rng: np.random.Generator, world: _World, length: float) -> None:
    for side in (-1.0, 1.0):
        z = float(rng.uniform(-10.0, 5.0))
        while z < length + FAR:
            span = float(rng.uniform(8.0, 35.0))
            if rng.random() < 0.12:  # a gap: sky and whatever stands behind it
                z += span * 0.5
                continue
            setback = float(rng.uniform(1.0, 6.0)) if world.verge_id == TERRAIN else float(rng.uniform(0.0, 1.5))
            x = side * (world.road_half_width + world.sidewalk_width + setback)
            height = float(rng.uniform(6.0, 28.0))
            world.backdrop.append(_Thing(z, _facade(rng, x, side, span, height)))
            z += span
        if world.verge_id == TERRAIN:  # hedges and bushes on the verge
            for bush_z in rng.uniform(0, length + 60, int(rng.integers(0, 8))):
                x = side * (world.road_half_width + world.sidewalk_width + float(rng.uniform(0.5, 1.0)))
                world.things.append(_Thing(float(bush_z), _bush(rng, x, float(rng.uniform(0.6, 1.4)))))


def _facade(rng: np.random.Generator, x: float, side: float, span: float, height: float) -> Drawer:
    wall = _jitter(rng, FACADES[int(rng.integers(0, len(FACADES)))], 25)
    window = _jitter(rng, (90, 70, 60), 30)
    floors = max(2, int(height / 3.2))
    columns = max(2, int(span / 3.0))
    lit = rng.random((floors, columns)) < 0.2

    def draw(canvas: _Canvas, z: float) -> None:
        z1 = z + span
        if z1 < NEAR:
            return
        z0 = max(z, NEAR)
        depth = side * 12.0
        # The end wall facing the camera, then the facade along the street.
        canvas.world_poly([(x, 0, z0), (x + depth, 0, z0), (x + depth, height, z0), (x, height, z0)], wall, BUILDING)
        shade = _shade(wall, 0.8)
        canvas.world_poly([(x, 0, z0), (x, 0, z1), (x, height, z1), (x, height, z0)], shade, BUILDING)
        window_depth = 0.5 * span / columns
        for c in range(columns):
            wz = z + (c + 0.25) * span / columns
            wz1 = wz + window_depth
            # Facades are seen at a grazing angle: skip windows that would be under two pixels wide.
            if wz < NEAR or canvas.focal * abs(x) * window_depth / (wz * wz1) < 2.0:
                continue
            for f in range(floors):
                y0 = 1.0 + f * (height - 1.5) / floors
                colour = (120, 200, 230) if lit[f, c] else window
                canvas.world_poly([(x, y0, wz), (x, y0, wz1), (x, y0 + 1.6, wz1), (x, y0 + 1.6, wz)], colour, None)

    return draw


def _bush(rng: np.random.Generator, x: float, size: float) -> Drawer:
    green = _jitter(rng, (40, 110, 60), 20)

    def draw(canvas: _Canvas, z: float) -> None:
        if z > NEAR + size:
            canvas.ellipse(x, size * 0.5, z, size * 1.2, size * 0.6, green, VEGETATION)

    return draw


def _tree(rng: np.random.Generator, x: float, height: float) -> Drawer:
    trunk = _jitter(rng, (40, 60, 85), 12)
    greens = [_jitter(rng, (45, 120, 60), 30) for _ in range(4)]
    blobs = [
        (float(rng.uniform(-1.2, 1.2)), float(rng.uniform(-0.8, 1.2)), float(rng.uniform(1.0, 1.8))) for _ in greens
    ]

    def draw(canvas: _Canvas, z: float) -> None:
        if z <= NEAR + 1.0:
            return
        canvas.box(x - 0.15, x + 0.15, 0, height * 0.6, z, trunk, VEGETATION)
        for (dx, dy, r), green in zip(blobs, greens):
            canvas.disc(x + dx, height * 0.7 + dy, z, r * height / 7.0, green, VEGETATION)

    return draw


def _pole(rng: np.random.Generator, x: float, side: float) -> Drawer:
    """A post with a traffic sign or a street lamp's arm (sized so that a 512x256 network can resolve them)."""
    kind = "sign" if rng.random() < 0.6 else "lamp"
    height = float(rng.uniform(3.0, 4.0) if kind != "lamp" else rng.uniform(6.0, 8.0))
    metal = _jitter(rng, (110, 110, 115), 25)
    sign_colour = [(200, 90, 20), (30, 30, 200), (240, 240, 240), (20, 190, 230)][int(rng.integers(0, 4))]
    round_sign = rng.random() < 0.5

    def draw(canvas: _Canvas, z: float) -> None:
        if z <= NEAR + 0.5:
            return
        canvas.box(x - 0.14, x + 0.14, 0, height, z, metal, POLE)
        if kind == "sign":
            if round_sign:
                canvas.disc(x, height - 0.5, z, 0.5, (230, 230, 230), TRAFFIC_SIGN)
                canvas.disc(x, height - 0.5, z, 0.4, sign_colour, TRAFFIC_SIGN)
            else:
                canvas.box(x - 0.5, x + 0.5, height - 1.0, height, z, sign_colour, TRAFFIC_SIGN)
        else:
            arm = -side * 1.6
            canvas.box(min(x, x + arm), max(x, x + arm), height - 0.1, height + 0.05, z, metal, POLE)

    return draw


def _add_furniture(rng: np.random.Generator, world: _World, length: float) -> None:
    for side in (-1.0, 1.0):
        kerb_x = side * (world.road_half_width + 0.4)
        back_x = side * (world.road_half_width + world.sidewalk_width - 0.6)
        for z in rng.uniform(0, length + 80, int(rng.integers(2, 7) + length / 25)):
            world.things.append(_Thing(float(z), _pole(rng, kerb_x, side)))
        for z in rng.uniform(0, length + 80, int(rng.integers(0, 6) + length / 30)):
            world.things.append(_Thing(float(z), _tree(rng, back_x, float(rng.uniform(5.0, 9.0)))))
        for z in rng.uniform(0, length + 50, int(rng.integers(2, 8) + length / 15)):
            x = side * (world.road_half_width + float(rng.uniform(0.8, world.sidewalk_width - 0.3)))
            world.things.append(_Thing(float(z), _person(rng, x, float(rng.uniform(1.2, 1.95)))))


def _person(rng: np.random.Generator, x: float, height: float) -> Drawer:
    shirt, trousers = _random_colour(rng), _random_colour(rng, 10, 120)
    skin = _jitter(rng, (120, 150, 190), 40)
    stride = float(rng.uniform(-0.15, 0.15))

    def draw(canvas: _Canvas, z: float) -> None:
        if z <= NEAR + 0.3:
            return
        h = height
        canvas.world_poly([(x - 0.12, 0, z), (x - 0.02, 0.5 * h, z), (x - 0.2 + stride, 0, z)], trousers, PERSON)
        canvas.world_poly([(x + 0.12, 0, z), (x + 0.02, 0.5 * h, z), (x + 0.2 - stride, 0, z)], trousers, PERSON)
        canvas.box(x - 0.1, x + 0.1, 0, 0.5 * h, z, trousers, PERSON)
        canvas.box(x - 0.24, x + 0.24, 0.48 * h, 0.83 * h, z, shirt, PERSON)
        canvas.box(x - 0.32, x - 0.24, 0.45 * h, 0.82 * h, z, shirt, PERSON)
        canvas.box(x + 0.24, x + 0.32, 0.45 * h, 0.82 * h, z, shirt, PERSON)
        canvas.disc(x, 0.91 * h, z, 0.1 * h, skin, PERSON)

    return draw


def _car(rng: np.random.Generator, x: float, oncoming: bool) -> Drawer:
    paint = _jitter(rng, PAINTS[int(rng.integers(0, len(PAINTS)))], 20)
    length, half_w, height = float(rng.uniform(3.8, 5.0)), float(rng.uniform(0.8, 0.95)), float(rng.uniform(1.35, 1.6))
    body_h = height * 0.58

    def draw(canvas: _Canvas, z: float) -> None:
        if z <= NEAR + 0.5:
            return
        side_x = x - half_w if x > 0 else x + half_w  # the side facing the camera
        shade = _shade(paint, 0.75)
        canvas.ellipse(x, 0.02, z + length * 0.5, half_w * 1.3, 0.02 * length, (25, 25, 25), None)  # shadow
        canvas.world_poly(
            [(side_x, 0.25, z), (side_x, 0.25, z + length), (side_x, body_h, z + length), (side_x, body_h, z)],
            shade,
            CAR,
        )
        canvas.world_poly(
            [
                (side_x, body_h, z + 0.25 * length),
                (side_x, body_h, z + 0.85 * length),
                (side_x, height, z + 0.75 * length),
                (side_x, height, z + 0.4 * length),
            ],
            (70, 60, 55),
            CAR,
        )
        for wz in (z + 0.18 * length, z + 0.8 * length):
            canvas.ellipse(side_x, 0.32, wz, 0.05, 0.32, (20, 20, 20), CAR)
        canvas.box(x - half_w, x + half_w, 0.2, body_h, z, paint, CAR)
        canvas.world_poly(
            [
                (x - half_w, body_h, z),
                (x + half_w, body_h, z),
                (x + half_w * 0.8, height, z + 0.4),
                (x - half_w * 0.8, height, z + 0.4),
            ],
            paint,
            CAR,
        )
        canvas.world_poly(
            [
                (x - half_w * 0.85, body_h + 0.05, z),
                (x + half_w * 0.85, body_h + 0.05, z),
                (x + half_w * 0.75, height - 0.08, z + 0.4),
                (x - half_w * 0.75, height - 0.08, z + 0.4),
            ],
            (60, 50, 45),
            CAR,
        )
        lamp = (230, 240, 250) if oncoming else (30, 30, 200)
        canvas.box(x - half_w, x - half_w * 0.7, body_h - 0.2, body_h - 0.05, z, lamp, CAR)
        canvas.box(x + half_w * 0.7, x + half_w, body_h - 0.2, body_h - 0.05, z, lamp, CAR)
        canvas.box(x - half_w * 0.9, x - half_w * 0.5, 0.0, 0.25, z, (20, 20, 20), CAR)
        canvas.box(x + half_w * 0.5, x + half_w * 0.9, 0.0, 0.25, z, (20, 20, 20), CAR)

    return draw


def _add_traffic(rng: np.random.Generator, world: _World, length: float) -> None:
    lanes = len(world.lane_offsets) // 2 + 1
    lane_width = world.road_half_width / lanes
    for k in range(lanes):
        for side in (-1.0, 1.0):
            x = side * (k + 0.5) * lane_width
            for z in rng.uniform(3.0, length + 80, int(rng.integers(0, 3) + length / 40)):
                world.things.append(_Thing(float(z), _car(rng, x, oncoming=x < 0)))
    for side in (-1.0, 1.0):  # parked along the kerb
        for z in rng.uniform(2.0, length + 60, int(rng.integers(0, 5) + length / 30)):
            world.things.append(_Thing(float(z), _car(rng, side * (world.road_half_width - 1.1), oncoming=False)))


def _render(
    world: _World, camera_z: float, size: Tuple[int, int], rng: np.random.Generator
) -> Tuple[np.ndarray, np.ndarray]:
    width, height = size
    focal = 0.9 * width
    horizon = height * 0.45
    curvature, offset = world.curvature, world.lateral_offset
    canvas = _Canvas(
        image=np.empty((height, width, 3), np.uint8),
        label=np.full((height, width), IGNORE, np.uint8),
        focal=focal,
        cx=width / 2,
        horizon=horizon,
        road_center=lambda z: curvature * z * z - offset,
    )
    # Sky gradient, then the ground below the horizon as verge.
    rows = max(1, math.ceil(horizon) + 1)
    t = np.linspace(0.0, 1.0, rows, dtype=np.float32)[:, None]
    gradient = np.asarray(world.sky_top, np.float32) * (1 - t) + np.asarray(world.sky_bottom, np.float32) * t
    canvas.image[:rows] = gradient.astype(np.uint8)[:, None, :]
    canvas.label[:rows] = SKY
    verge = world.colours["terrain" if world.verge_id == TERRAIN else "sidewalk"]
    canvas.image[rows:] = verge
    canvas.label[rows:] = world.verge_id

    depths = np.geomspace(NEAR, FAR, 24)

    def strip(x0: float, x1: float, colour: Colour, train_id: Optional[int]) -> None:
        near_edge = [canvas.project(x0, 0.0, float(z)) for z in depths]
        far_edge = [canvas.project(x1, 0.0, float(z)) for z in depths[::-1]]
        canvas.poly(near_edge + far_edge, colour, train_id)

    hw, sw = world.road_half_width, world.sidewalk_width
    for side in (-1.0, 1.0):
        strip(side * hw, side * (hw + sw), world.colours["sidewalk"], SIDEWALK)
    strip(-hw, hw, world.colours["road"], ROAD)
    for side in (-1.0, 1.0):
        strip(side * hw, side * (hw + 0.15), world.colours["kerb"], SIDEWALK)
    _lane_markings(canvas, world, camera_z, strip)

    visible = [(thing, thing.z - camera_z) for thing in world.backdrop + world.things]
    for thing, z in sorted(visible[: len(world.backdrop)], key=lambda item: -item[1]):
        if -40.0 < z < FAR:
            thing.draw(canvas, z)
    for thing, z in sorted(visible[len(world.backdrop) :], key=lambda item: -item[1]):
        if NEAR < z < FAR * 0.6:
            thing.draw(canvas, z)
    return _light(canvas.image, world, rng), canvas.label


def _lane_markings(canvas: _Canvas, world: _World, camera_z: float, strip: Callable[..., None]) -> None:
    """White lines (labelled road, as in Cityscapes); the dashes' phase follows the camera so videos move."""
    period, dash, reach = 9.0, 3.0, 80.0
    first = math.floor((camera_z + NEAR) / period) * period - camera_z
    paint = (225, 225, 225)
    for lane_x in world.lane_offsets:
        if lane_x == 0.0 and len(world.lane_offsets) > 1:  # the solid centre line of a multi-lane road
            strip(-0.1, 0.1, paint, None)
            continue
        for z0 in np.arange(first, reach, period):
            z1 = float(z0) + dash
            if z1 > NEAR:
                z0 = max(float(z0), NEAR)
                points = [
                    (lane_x - 0.06, 0, z0),
                    (lane_x + 0.06, 0, z0),
                    (lane_x + 0.06, 0, z1),
                    (lane_x - 0.06, 0, z1),
                ]
                canvas.world_poly(points, paint, None)


def _light(image: np.ndarray, world: _World, rng: np.random.Generator) -> np.ndarray:
    """Global exposure and colour cast, a smooth illumination field (shadows, vignetting) and sensor noise."""
    gain, bias, cast, sigma = world.lighting
    height, width = image.shape[:2]
    channel_gain = gain * (1.0 + np.asarray((-cast, 0.0, cast), np.float32) / 128.0)
    field_small = rng.uniform(0.75, 1.15, (3, 4, 1)).astype(np.float32) * channel_gain.astype(np.float32)
    illumination = cv2.resize(field_small, (width, height), interpolation=cv2.INTER_LINEAR)
    lit = cv2.multiply(image, illumination, dtype=cv2.CV_8U)
    small_noise = rng.standard_normal((height // 2 + 1, width // 2 + 1), dtype=np.float32) * sigma + bias
    noise = cv2.resize(small_noise.astype(np.int16), (width, height), interpolation=cv2.INTER_NEAREST)
    return cv2.add(lit, cv2.merge([noise, noise, noise]), dtype=cv2.CV_8U)


def _check_size(size: Tuple[int, int]) -> Tuple[int, int]:
    width, height = int(size[0]), int(size[1])
    if width < 16 or height < 16:
        raise EdgekitError(f"synthetic scenes need at least 16x16 pixels, got {width}x{height}")
    return width, height


def _generator(seed: int) -> "np.random.Generator":
    """The scenes' random stream: numpy's Generator (1.17+), so a seed gives the same scene on every machine.

    JetPack 4.6 ships numpy 1.13 from apt; there the demo needs a real --source or a newer numpy, said in one line
    rather than drawing different scenes from the legacy RandomState.
    """
    if not hasattr(np.random, "default_rng"):
        raise EdgekitError(
            f"synthetic street scenes need numpy >= 1.17 (this is {np.__version__}): pip3 install 'numpy>=1.17,<1.20', "
            "or give a real --source"
        )
    return np.random.default_rng(seed)


def generate_scene(seed: int, size: Tuple[int, int] = (1024, 512)) -> Tuple[np.ndarray, np.ndarray]:
    """(HxWx3 uint8 BGR image, HxW uint8 Cityscapes train-id label with 255 = ignore) for (width, height) `size`."""
    size = _check_size(size)
    rng = _generator(seed)
    world = _sample_world(rng, length=0.0)
    return _render(world, 0.0, size, rng)


def synthetic_frames(count: int, size: Tuple[int, int], first_seed: int) -> List[np.ndarray]:
    """The images of the scenes of seeds ``first_seed...`` at ``size``: calibration, hold-out and export checks."""
    return [generate_scene(seed, size)[0] for seed in range(first_seed, first_seed + count)]


def synthetic_video(
    path: Path, frames: int = 90, size: Tuple[int, int] = (640, 360), fps: float = 15.0, seed: int = 0
) -> Path:
    """An mp4 (mp4v) of the camera driving forward along one synthetic street; the runner's bundled sample."""
    size = _check_size(size)
    if frames < 1 or fps <= 0:
        raise EdgekitError(f"a video needs at least one frame and a positive fps, got frames={frames}, fps={fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = _generator(seed)
    speed = 10.0  # metres per second
    world = _sample_world(rng, length=speed * frames / fps)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise EdgekitError(f"cannot write {path}: OpenCV has no mp4v encoder here or the folder is not writable")
    try:
        for i in range(frames):
            image, _ = _render(world, speed * i / fps, size, rng)
            writer.write(image)
    finally:
        writer.release()
    return path


def _label_ids_from_train_ids() -> np.ndarray:
    """256-entry lookup from train id to the official Cityscapes labelId (ignored pixels -> 'unlabeled', 0)."""
    from cityscapesscripts.helpers.labels import trainId2label

    lut = np.zeros(256, np.uint8)
    for train_id, lab in trainId2label.items():
        if 0 <= train_id < 255:
            lut[train_id] = lab.id
    return lut


@dataclass
class SyntheticScenes:
    """`count` scenes generated on demand (no disk), a SegmentationSource labelled with the 19 Cityscapes classes."""

    count: int
    size: Tuple[int, int] = (1024, 512)
    seed: int = 0

    def __post_init__(self) -> None:
        from edgekit.board.classes import cityscapes_classes

        self.classes = cityscapes_classes(with_background=False)

    def __len__(self) -> int:
        return self.count

    def read(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        return generate_scene(self.seed + index, self.size)

    def read_mask(self, index: int) -> np.ndarray:
        return self.read(index)[1]

    def describe(self, index: int) -> str:
        return f"synthetic scene {self.seed + index}"


def write_cityscapes_layout(
    out_dir: Path, count: int, size: Tuple[int, int] = (1024, 512), seed: int = 0, val_fraction: float = 0.2
) -> Path:
    """Write `count` scenes as a Cityscapes tree (city 'synth'): leftImg8bit + gtFine labelIds and labelTrainIds."""
    if count < 1:
        raise EdgekitError(f"--count must be at least 1, got {count}")
    if not 0.0 <= val_fraction < 1.0:
        raise EdgekitError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out_dir = Path(out_dir)
    lut = _label_ids_from_train_ids()
    val_count = round(count * val_fraction) if count > 1 else 0
    with events.task(f"writing {count} synthetic scenes", total=count) as work:
        for i in range(count):
            split = "val" if i >= count - val_count else "train"
            stem = f"synth_{seed:06d}_{i:06d}"
            image, label = generate_scene(seed * 1_000_003 + i, size)
            image_dir = out_dir / "leftImg8bit" / split / "synth"
            label_dir = out_dir / "gtFine" / split / "synth"
            image_dir.mkdir(parents=True, exist_ok=True)
            label_dir.mkdir(parents=True, exist_ok=True)
            _write_png(image_dir / f"{stem}_leftImg8bit.png", image)
            _write_png(label_dir / f"{stem}_gtFine_labelTrainIds.png", label)
            _write_png(label_dir / f"{stem}_gtFine_labelIds.png", lut[label])
            work.advance()
    return out_dir


def _write_png(path: Path, array: np.ndarray) -> None:
    if not cv2.imwrite(str(path), array):
        raise EdgekitError(f"cannot write {path}: check that the folder is writable and the disk is not full")
