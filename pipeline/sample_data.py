"""Generates a small deepfake dataset in the DFDC layout from real faces.

Real faces ship inside scikit-image (100 LFW faces and the astronaut photo), so
the sample data needs no network. A real video shows one face moving over a
real background photo; a fake is made *from* a real video, as face swaps are:
the face region is replaced inside an elliptical mask with Poisson cloning,
either by a different person's face or by a warped copy of the same face, with
the colour mismatch and resolution loss that real swaps leave behind.

    python -m pipeline.sample_data OUT --videos 24 --seed 0
"""

import argparse
import json
import os
import string
from typing import List, Optional, Tuple

import cv2
import numpy as np
import skimage
import skimage.data

DEFAULT_FRAME_SIZE = (320, 240)
FPS = 15
PART_NAME = "dfdc_train_part_0"
MANIPULATIONS = ("face_swap", "self_warp")
_BACKGROUNDS = ("coffee", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "retina", "immunohistochemistry")
# The astronaut's face in skimage.data.astronaut() (x, y, width, height), as MTCNN boxes it, with some context.
_ASTRONAUT_FACE = (160, 40, 128, 150)
# Skin-like RGB tints for the grey LFW faces.
_TINTS = ((1.0, 0.82, 0.68), (0.95, 0.78, 0.62), (0.85, 0.66, 0.52), (1.0, 0.86, 0.76), (0.7, 0.53, 0.42))


def load_faces() -> List[np.ndarray]:
    """The real faces that ship with scikit-image: the astronaut, then 100 LFW faces (RGB uint8)."""
    lfw_path = os.path.join(os.path.dirname(skimage.__file__), "data", "lfw_subset.npy")
    lfw = np.load(lfw_path)[:100]
    x, y, w, h = _ASTRONAUT_FACE
    faces = [skimage.data.astronaut()[y : y + h, x : x + w]]
    for number, grey in enumerate(lfw):
        grey = (grey * 255).astype(np.float32)
        tint = np.array(_TINTS[number % len(_TINTS)], np.float32)
        faces.append(np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8))
    return faces


def load_background(name: str) -> np.ndarray:
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3]


def _elliptic_mask(width: int, height: int, shrink: float = 1.0) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    axes = (max(1, int(width * 0.46 * shrink)), max(1, int(height * 0.5 * shrink)))
    cv2.ellipse(mask, (width // 2, height // 2), axes, 0, 0, 360, 255, -1)
    return mask


class Scene:
    """A real video's content: a face moving over a slowly panning background."""

    def __init__(
        self,
        face: np.ndarray,
        background: np.ndarray,
        rng: np.random.Generator,
        frames: int,
        frame_size: Tuple[int, int] = DEFAULT_FRAME_SIZE,
    ):
        self.face = face
        self.frames = frames
        self.width, self.height = frame_size
        self.face_size = int(rng.integers(80, 110) * self.height / DEFAULT_FRAME_SIZE[1])
        bg_h, bg_w = background.shape[:2]
        scale = max((self.width + 40) / bg_w, (self.height + 40) / bg_h)
        self.background = cv2.resize(background, (int(bg_w * scale) + 1, int(bg_h * scale) + 1))
        self.pan = rng.uniform(-1, 1, size=2)
        self.phase = rng.uniform(0, 2 * np.pi, size=2)
        self.amplitude = rng.uniform(10, 40, size=2)
        self.center = np.array([self.width / 2, self.height / 2]) + rng.uniform(-30, 30, size=2)

    def face_box(self, t: int) -> Tuple[int, int, int, int]:
        """Where the face is at frame t (x, y, width, height)."""
        angle = 2 * np.pi * t / max(1, self.frames) + self.phase
        cx, cy = self.center + self.amplitude * np.sin(angle)
        height = self.face_size
        width = int(height * self.face.shape[1] / self.face.shape[0])
        x = int(np.clip(cx - width / 2, 0, self.width - width))
        y = int(np.clip(cy - height / 2, 0, self.height - height))
        return x, y, width, height

    def background_at(self, t: int) -> np.ndarray:
        max_dx = self.background.shape[1] - self.width
        max_dy = self.background.shape[0] - self.height
        dx = int(np.clip(max_dx / 2 + self.pan[0] * t, 0, max_dx))
        dy = int(np.clip(max_dy / 2 + self.pan[1] * t, 0, max_dy))
        return self.background[dy : dy + self.height, dx : dx + self.width].copy()

    def render(self, t: int) -> np.ndarray:
        frame = self.background_at(t)
        x, y, w, h = self.face_box(t)
        face = cv2.resize(self.face, (w, h), interpolation=cv2.INTER_CUBIC)
        alpha = cv2.GaussianBlur(_elliptic_mask(w, h).astype(np.float32) / 255, (9, 9), 0)[..., None]
        region = frame[y : y + h, x : x + w].astype(np.float32)
        frame[y : y + h, x : x + w] = (alpha * face + (1 - alpha) * region).astype(np.uint8)
        return frame


def _swap_face(
    frame: np.ndarray, box: Tuple[int, int, int, int], new_face: np.ndarray, colour_shift: np.ndarray
) -> np.ndarray:
    """Poisson-clones `new_face` into the inner ellipse of `box` as a face-swap generator would leave it.

    The face is synthesised at a quarter of the resolution and upsampled with
    nearest-neighbour steps (the blocky upsampling texture of generators), cloned
    with Poisson blending, then given the colour mismatch of a swap whose
    colour correction failed.
    """
    x, y, w, h = box
    small = cv2.resize(new_face, (max(8, w // 4), max(8, h // 4)), interpolation=cv2.INTER_AREA)
    face = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    mask = _elliptic_mask(w, h, shrink=0.8)
    centre = (x + w // 2, y + h // 2)
    cloned = cv2.seamlessClone(face, frame, mask, centre, cv2.NORMAL_CLONE).astype(np.float32)
    alpha = np.zeros(frame.shape[:2], np.float32)
    alpha[y : y + h, x : x + w] = cv2.GaussianBlur(mask.astype(np.float32) / 255, (5, 5), 0)
    shifted = np.clip(cloned * colour_shift, 0, 255)
    return (alpha[..., None] * shifted + (1 - alpha[..., None]) * cloned).astype(np.uint8)


def _warp(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = face.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-12, 12)), float(rng.uniform(1.05, 1.2)))
    return cv2.warpAffine(face, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def render_video(
    scene: Scene, manipulation: Optional[str], donor: Optional[np.ndarray], rng: np.random.Generator
) -> List[np.ndarray]:
    """Renders the frames (RGB) of a real video, or of a fake made from it."""
    if manipulation == "self_warp":
        donor = _warp(scene.face, rng)
    colour_shift = rng.uniform(0.75, 1.3, size=3).astype(np.float32)
    frames = []
    for t in range(scene.frames):
        frame = scene.render(t)
        if manipulation is not None:
            x, y, w, h = scene.face_box(t)
            frame = _swap_face(frame, (x, y, w, h), cv2.resize(donor, (w, h)), colour_shift)
        frames.append(frame)
    return frames


def write_video(path: str, frames_rgb: List[np.ndarray], fps: int = FPS) -> None:
    height, width = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MPEG-4 video to {path}")
    try:
        for frame in frames_rgb:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _video_name(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(string.ascii_lowercase), size=10)) + ".mp4"


def generate(
    output_dir: str,
    num_videos: int,
    seed: int = 0,
    seconds: float = 2.0,
    frame_size: Tuple[int, int] = DEFAULT_FRAME_SIZE,
) -> str:
    """Writes `num_videos` videos (half real, half fake) and a DFDC `metadata.json`; returns the part folder."""
    if num_videos < 2:
        raise ValueError(f"--videos must be at least 2 (one real and one fake), got {num_videos}")
    rng = np.random.default_rng(seed)
    faces = load_faces()
    backgrounds = [load_background(name) for name in _BACKGROUNDS]
    part_dir = os.path.join(output_dir, PART_NAME)
    os.makedirs(part_dir, exist_ok=True)
    num_originals = (num_videos + 1) // 2
    frames = max(2, int(round(seconds * FPS)))
    identities = rng.permutation(len(faces))[:num_originals]
    metadata = {}
    originals = []
    for number, identity in enumerate(identities):
        scene_seed = int(rng.integers(2**31))
        background = backgrounds[number % len(backgrounds)]
        name = _video_name(rng)
        scene = Scene(faces[identity], background, np.random.default_rng(scene_seed), frames, frame_size)
        write_video(os.path.join(part_dir, name), render_video(scene, None, None, rng))
        metadata[name] = {"label": "REAL", "split": "train", "original": None}
        originals.append((scene_seed, int(identity), background, name))
    for number in range(num_videos - num_originals):
        scene_seed, identity, background, original = originals[number % num_originals]
        manipulation = MANIPULATIONS[number % len(MANIPULATIONS)]
        donor = faces[(identity + 1 + int(rng.integers(len(faces) - 1))) % len(faces)]
        scene = Scene(faces[identity], background, np.random.default_rng(scene_seed), frames, frame_size)
        name = _video_name(rng)
        write_video(os.path.join(part_dir, name), render_video(scene, manipulation, donor, rng))
        metadata[name] = {"label": "FAKE", "split": "train", "original": original, "manipulation": manipulation}
    with open(os.path.join(part_dir, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=1, sort_keys=True)
    return part_dir


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir")
    parser.add_argument("--videos", type=int, default=24, help="number of videos, about half of them fake")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each video")
    parser.add_argument("--height", type=int, default=DEFAULT_FRAME_SIZE[1], help="frame height (4:3 frames)")
    args = parser.parse_args(argv)
    frame_size = (args.height * 4 // 3, args.height)
    part_dir = generate(args.output_dir, args.videos, args.seed, args.seconds, frame_size)
    print(f"Wrote {args.videos} videos and metadata.json to {part_dir}")


if __name__ == "__main__":
    main()
