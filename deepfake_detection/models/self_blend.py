"""Self-blended images (SBI, Shiohara and Yamasaki, CVPR 2022): pseudo-fakes made from real faces only.

A real face is blended back into itself: a copy with changed colour and
frequency content and a small shift is pasted through a deformed, blurred
face mask at a random ratio. The result has no generator's fingerprint, only
what every face swap and re-enactment leaves: a blending boundary and a
colour and sharpness mismatch inside it. A detector trained on such pairs
(each real face beside its own blend) learns those and nothing else, which is
why SBI generalises across generators.

Half of the pseudo-fakes instead paste another real face of the batch,
aligned by landmarks and colour-corrected (Face X-ray's blended images, Li et
al., CVPR 2020): still no generator, but the identity mismatch of a swap.
Real and fake then go through the same re-rendering (resampling, noise,
JPEG, flip), as a swap goes through the camera and codec.

Everything is numpy/OpenCV and draws from seeded generators, so a blend is
reproducible; the Trainer's input path calls `blend_batch` on small batches.
"""

import functools
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

from deepfake_detection import face_geometry

# SBI's blend ratios: a full blend half the time, partial ones otherwise.
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
# Share of pseudo-fakes that paste another real face of the batch (Face X-ray) rather than the face itself (SBI).
CROSS_SHARE = 0.5
# SBI draws masks on 192-256 px faces; its blur kernels (5-25 px) are for this size and scale with the crop.
_MASK_SIZE = 224


def landmarks_in_pixels(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Stored landmarks (10 fractions of the crop) -> [5, 2] pixel coordinates."""
    return np.asarray(landmarks, np.float64).reshape(5, 2) * [width, height]


def _colour_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB shift up to ±20, hue/saturation/value shift, brightness and contrast up to ±10 %; uint8 throughout."""
    levels = np.arange(256, dtype=np.int32)[:, None]
    shift = np.clip(levels + rng.uniform(-20, 20, size=3).round().astype(np.int32), 0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(cv2.LUT(image, shift[None]), cv2.COLOR_RGB2HSV)
    hue, saturation, value = (rng.uniform(-0.3, 0.3, size=3) * [10, 40, 40]).round().astype(int)
    table = np.concatenate([(levels + hue) % 180, levels + saturation, levels + value], axis=1)
    out = cv2.cvtColor(cv2.LUT(hsv, np.clip(table, 0, 255).astype(np.uint8)[None]), cv2.COLOR_HSV2RGB)
    contrast, brightness = rng.uniform(0.9, 1.1), rng.uniform(-0.1, 0.1) * 255
    mean = float(out.mean())
    return cv2.convertScaleAbs(out, alpha=contrast, beta=mean * (1 - contrast) + brightness)


def _frequency_change(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down-and-up scaling by 2 or 4 (lost detail), or sharpening (added detail)."""
    height, width = image.shape[:2]
    if rng.random() < 0.5:
        factor = int(rng.choice([2, 4]))
        small = cv2.resize(image, (max(1, width // factor), max(1, height // factor)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    blurred = cv2.GaussianBlur(image, (0, 0), 1.0 + rng.random())
    amount = rng.uniform(0.5, 1.5)
    return cv2.addWeighted(image, 1 + amount, blurred, -amount, 0)


def altered_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uint8 copy of a face with SBI's source changes: colour, then frequency."""
    return _frequency_change(_colour_jitter(image, rng), rng)


def _shift(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """The same small affine move of the source and its mask: x ±3 %, y ±1.5 %, scale 0.95-1.05."""
    height, width = image.shape[:2]
    scale = rng.uniform(0.95, 1.05)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, scale)
    matrix[:, 2] += rng.uniform(-0.03, 0.03) * width, rng.uniform(-0.015, 0.015) * height
    moved = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    return moved, cv2.warpAffine(mask, matrix, (width, height))


@functools.lru_cache(maxsize=8)
def _pixel_grid(height: int, width: int) -> np.ndarray:
    """float32 [H, W, 2]: each pixel's (x, y), the identity map of `cv2.remap` (read-only, shared)."""
    grid = np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), axis=-1)
    grid.flags.writeable = False
    return grid


def _elastic(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth random displacement of the mask's outline (a coarse random field, upsampled)."""
    height, width = mask.shape
    strength = rng.uniform(0.02, 0.06) * width
    field = np.ascontiguousarray(rng.uniform(-1, 1, (2, 8, 8)).astype(np.float32).transpose(1, 2, 0))
    displacement = cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC) * np.float32(strength)
    return cv2.remap(mask, _pixel_grid(height, width) + displacement, None, cv2.INTER_LINEAR, borderValue=0.0)


def _odd(value: float) -> int:
    return max(1, int(value) // 2 * 2 + 1)


def blend_mask(landmarks: np.ndarray, shape: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """SBI's mask: the face hull (sometimes without the forehead), deformed, blurred, shrunk, blurred, scaled.

    Kernel sizes are SBI's (5-25 px on a `_MASK_SIZE` face) scaled to the
    crop, so the mask has the same shape at any crop size. A crop larger
    than `_MASK_SIZE` gets its mask drawn at that size and resized up; a
    smaller one at its own size (drawing large and shrinking cost a third of
    a 128 px blend).
    """
    height, width = shape
    factor = min(1.0, _MASK_SIZE / max(height, width))
    small = (max(1, round(height * factor)), max(1, round(width * factor)))
    kernel_scale = max(small) / _MASK_SIZE
    forehead = 0.7 if rng.random() < 0.5 else 0.1
    mask = _elastic(face_geometry.hull_mask(np.asarray(landmarks) * factor, small, forehead), rng)
    mask = cv2.GaussianBlur(mask, (_odd(rng.integers(5, 26) * kernel_scale),) * 2, 0)
    core = (mask >= 0.999).astype(np.float32)
    if core.any():
        mask = core
    mask = cv2.GaussianBlur(mask, (_odd(rng.integers(5, 26) * kernel_scale),) * 2, 0)
    if small != (height, width):
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return mask * float(rng.choice(BLEND_RATIOS))


def _blend(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """mask × source + (1 - mask) × target, rounded to uint8 (OpenCV's kernel: a quarter of numpy's float maths)."""
    alpha = np.asarray(mask, np.float32)
    return cv2.blendLinear(source, target, alpha, 1 - alpha)


MaskDrawer = Callable[[np.ndarray, Tuple[int, int], np.random.Generator], np.ndarray]


def self_blend(
    image: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, draw_mask: MaskDrawer = blend_mask
) -> Tuple[np.ndarray, np.ndarray]:
    """One pseudo-fake of a real face (uint8 RGB [H, W, 3], landmarks as 10 crop fractions) and its mask.

    As in SBI, either the pasted source or the face it is pasted onto gets
    the colour and frequency changes, so the mismatch runs both ways.
    `draw_mask` draws the region pasted through (the classifier's whole-face
    masks by default).
    """
    height, width = image.shape[:2]
    source, target = image, image
    if rng.random() < 0.5:
        source = altered_copy(image, rng)
    else:
        target = altered_copy(image, rng)
    mask = draw_mask(landmarks_in_pixels(landmarks, height, width), (height, width), rng)
    source, mask = _shift(source, mask, rng)
    return _blend(source, target, mask), mask


def cross_blend(
    image: np.ndarray,
    landmarks: np.ndarray,
    partner: np.ndarray,
    partner_landmarks: np.ndarray,
    rng: np.random.Generator,
    draw_mask: MaskDrawer = blend_mask,
) -> Tuple[np.ndarray, np.ndarray]:
    """Face X-ray's blended image: another real face aligned by landmarks, colour-matched, pasted through the mask.

    Two real faces, no generator: the pseudo-fake carries the boundary and
    the identity mismatch of a face swap, with the colour correction swap
    tools apply.
    """
    height, width = image.shape[:2]
    marks = landmarks_in_pixels(landmarks, height, width)
    partner_marks = landmarks_in_pixels(partner_landmarks, *partner.shape[:2])
    mask = draw_mask(marks, (height, width), rng)
    source = face_geometry.align_face(partner, partner_marks, marks, (height, width))
    source = face_geometry.colour_transfer(source, image, mask)
    if rng.random() < 0.5:
        source = _frequency_change(source, rng)
    return _blend(source, image, mask), mask


def _rerendered(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a camera and codec do after a swap: resampling and sensor noise, the same for every image."""
    out = images
    if rng.random() < 0.3:
        height, width = images.shape[1:3]
        factor = rng.uniform(0.5, 0.9)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        out = np.stack([cv2.resize(cv2.resize(i, size, interpolation=cv2.INTER_AREA), (width, height)) for i in out])
    if rng.random() < 0.3:
        out = _with_sensor_noise(out, rng.uniform(1, 3), int(rng.integers(2**31)))
    return out


def _with_sensor_noise(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Gaussian noise of `sigma` grey levels, rounded, added with saturation.

    OpenCV's generator (thread-local, seeded here from the pair's draws) fills
    the integer noise in a quarter of numpy's float32 time.
    """
    cv2.setRNGSeed(seed)
    noise = np.empty(images.shape, np.int16)
    cv2.randn(noise, 0.0, sigma)
    return cv2.add(images, noise, dtype=cv2.CV_8U)


def postprocess(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same re-rendering, JPEG re-compression (quality 40-100, half the time) and flip for images of a pair."""
    return _postprocessed(images, rng)[0]


def _postprocessed(images: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, bool]:
    """`postprocess`'s images, and whether they were flipped (a pasted region's map flips with them)."""
    images = _rerendered(np.asarray(images), rng)
    quality = int(rng.integers(40, 101)) if rng.random() < 0.5 else None
    flip = rng.random() < 0.5
    out = np.empty_like(images)
    for image, slot in zip(images, out, strict=True):
        if quality is not None:
            _, encoded = cv2.imencode(
                ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
            )
            image = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        if flip:
            cv2.flip(image, 1, dst=slot)
        else:
            slot[...] = image
    return out, flip


def _pseudo_fake(
    image: np.ndarray,
    landmarks: np.ndarray,
    partner: Optional[Tuple[np.ndarray, np.ndarray]],
    seed: List[int],
    draw_mask: MaskDrawer = blend_mask,
) -> Tuple[np.ndarray, np.ndarray]:
    """A self-blend, or (with a partner, CROSS_SHARE of the time) a cross-blend, and its mask; clips frame by
    frame alike."""
    rng = np.random.default_rng(seed)
    cross = partner is not None and rng.random() < CROSS_SHARE
    if image.ndim == 4:
        frames = zip(image, landmarks, *(partner if cross else ()), strict=True)
        fakes, masks = zip(*[_pseudo_fake_frame(frame, cross, seed, draw_mask) for frame in frames], strict=True)
        return np.stack(fakes), np.stack(masks)
    return _pseudo_fake_frame((image, landmarks) + (partner if cross else ()), cross, seed, draw_mask)


def _pseudo_fake_frame(
    frame: tuple, cross: bool, seed: List[int], draw_mask: MaskDrawer
) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + [2])
    if cross:
        return cross_blend(*frame, rng, draw_mask)
    return self_blend(frame[0], frame[1], rng, draw_mask)


def blend_pair(
    image: np.ndarray, landmarks: np.ndarray, seed: np.ndarray, partner: Optional[Tuple[np.ndarray, np.ndarray]] = None
) -> np.ndarray:
    """uint8 [2, ...]: a real face (or clip) and its pseudo-fake, post-processed alike; reproducible from `seed`.

    A clip ([T, H, W, 3] with [T, 10] landmarks) gives [2, T, H, W, 3]: every
    frame is blended with the same random draws, so the blend is steady over
    time as a swap is. `partner` is another real face (pixels, landmarks).
    """
    return _pair_and_mask(image, landmarks, np.asarray(seed, np.int64).ravel().tolist(), partner)[0]


def _pair_and_mask(
    image: np.ndarray,
    landmarks: np.ndarray,
    seed: List[int],
    partner: Optional[Tuple[np.ndarray, np.ndarray]],
    draw_mask: MaskDrawer = blend_mask,
) -> Tuple[np.ndarray, np.ndarray, bool]:
    """`blend_pair`'s pair, the mask its pseudo-fake was pasted through, and whether post-processing flipped
    the pair (and so where the mask now lies)."""
    fake, mask = _pseudo_fake(image, landmarks, partner, seed, draw_mask)
    frames = np.concatenate([image.reshape((-1,) + image.shape[-3:]), fake.reshape((-1,) + image.shape[-3:])])
    pair, flipped = _postprocessed(frames, np.random.default_rng(seed + [1]))
    return pair.reshape((2,) + image.shape), mask, flipped


def _partner(index: int, reals: List[int], images: np.ndarray, landmarks: np.ndarray):  # noqa: ANN202
    """The next real face of the batch after `index` (wrapping round), as (pixels, landmarks); None when alone."""
    others = [j for j in reals if j != index]
    if not others:
        return None
    j = min(others, key=lambda k: (k - index) % len(images))
    return images[j], landmarks[j]


def blend_batch(images: np.ndarray, landmarks: np.ndarray, is_real: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """uint8 [N, 2, ...]: for each real face, the pair (real, pseudo-fake); a fake passes through twice.

    The partner of a cross-blend is the next real face of the batch, so a
    batch's draws depend only on its faces and its seed.
    """
    seed = np.asarray(seed, np.int64).ravel().tolist()
    reals = [i for i in range(len(images)) if is_real[i]]
    out = []
    for i, image in enumerate(images):
        if not is_real[i]:
            post = postprocess(image.reshape((-1,) + image.shape[-3:]), np.random.default_rng(seed + [i, 1]))
            out.append(np.stack([post.reshape(image.shape)] * 2))
            continue
        out.append(blend_pair(image, landmarks[i], np.array(seed + [i]), _partner(i, reals, images, landmarks)))
    return np.stack(out)


# The locator's pseudo-fakes (`region_mask`): a whole face this share of the time, else one part of it.
WHOLE_FACE_SHARE = 0.4
# Parts as ellipses in the face's own frame: the centre is a mix of the five landmarks (left eye, right eye, nose,
# mouth corners) moved across the face in eye distances and down it in eye-to-mouth distances; half-axes in the same
# units. `face_geometry.part_mask`'s mouth and eyes, single eyes, the nose, the lower face.
_PARTS = (
    # landmark weights, across, down, half-width, half-height
    ((0, 0, 0, 0.5, 0.5), 0.0, 0.1, 0.75, 0.5),
    ((0.5, 0.5, 0, 0, 0), 0.0, -0.1, 1.0, 0.4),
    ((1, 0, 0, 0, 0), 0.0, 0.0, 0.45, 0.35),
    ((0, 1, 0, 0, 0), 0.0, 0.0, 0.45, 0.35),
    ((0, 0, 1, 0, 0), 0.0, -0.1, 0.35, 0.55),
    ((0, 0, 0, 0.5, 0.5), 0.0, 0.3, 1.0, 0.6),
)


def part_region(landmarks: np.ndarray, shape: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """float32 [H, W]: one part of the face (`_PARTS`), its size, place and tilt jittered, outline deformed and
    feathered, scaled by a blend ratio: edits of a mouth or the eyes, whatever tool drew their outline."""
    weights, across_step, down_step, half_width, half_height = _PARTS[int(rng.integers(len(_PARTS)))]
    landmarks = np.asarray(landmarks, np.float64)
    across, down, eye_w, mouth_h = face_geometry.face_axes(landmarks)
    jitter = rng.normal(0.0, 0.1, size=2) * eye_w
    centre = np.asarray(weights) @ landmarks + (across_step * eye_w + jitter[0]) * across
    centre = centre + (down_step * mouth_h) * down + jitter[1] * down
    axes = np.array([half_width * eye_w, half_height * mouth_h]) * rng.uniform(0.75, 1.35, size=2)
    angle = float(np.degrees(np.arctan2(across[1], across[0]))) + rng.uniform(-15, 15)
    mask = np.zeros(shape, np.float32)
    cv2.ellipse(mask, tuple(int(round(v)) for v in centre), tuple(max(1, int(v)) for v in axes), angle, 0, 360, 1.0, -1)
    mask = _elastic(mask, rng)
    mask = cv2.GaussianBlur(mask, (_odd(rng.uniform(0.05, 0.25) * min(axes)),) * 2, 0)
    return mask * float(rng.choice(BLEND_RATIOS))


def region_mask(landmarks: np.ndarray, shape: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The locator's masks: SBI's whole-face mask (`blend_mask`) WHOLE_FACE_SHARE of the time, else a part."""
    if rng.random() < WHOLE_FACE_SHARE:
        return blend_mask(landmarks, shape, rng)
    return part_region(landmarks, shape, rng)


def coverage(mask: np.ndarray, grid: int) -> np.ndarray:
    """float32 [grid, grid]: the share of each cell inside the pasted region, whatever its blend ratio."""
    peak = float(mask.max())
    if peak <= 0:
        return np.zeros((grid, grid), np.float32)
    return np.clip(cv2.resize(mask / peak, (grid, grid), interpolation=cv2.INTER_AREA), 0.0, 1.0)


def located_batch(
    images: np.ndarray, landmarks: np.ndarray, seed: np.ndarray, grid: int
) -> Tuple[np.ndarray, np.ndarray]:
    """The locator's examples from real faces [N, H, W, 3]: uint8 [N, 2, H, W, 3], each face and its pseudo-fake
    pasted through `region_mask`, post-processed alike, and float32 [N, 2, grid, grid], what of each cell was
    pasted (`coverage`; zeros for the real face), flipped with the pair. Reproducible from `seed`."""
    seed = np.asarray(seed, np.int64).ravel().tolist()
    reals = list(range(len(images)))
    pairs, maps = [], []
    for i, image in enumerate(images):
        partner = _partner(i, reals, images, landmarks)
        pair, mask, flipped = _pair_and_mask(image, landmarks[i], seed + [i], partner, region_mask)
        cells = coverage(mask, grid)
        pairs.append(pair)
        maps.append(np.stack([np.zeros_like(cells), cells[:, ::-1] if flipped else cells]))
    return np.stack(pairs), np.stack(maps).astype(np.float32)
