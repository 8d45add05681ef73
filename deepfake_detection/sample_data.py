"""Generates a deepfake dataset in the DFDC layout from the real faces that ship with scikit-image.

A real video is what a camera records: one or two people with their own
surroundings, a moving camera (pan, zoom, tilt), lighting and white balance of
the scene, sensor noise, and H.264 at FaceForensics++'s light (`c23`) or heavy
(`c40`) compression. No face is pasted onto anything: a face arrives with its
surroundings (an LFW crop is extended by its own smeared border, far outside
the face), so a real face carries no face-shaped seam.

A fake is made from its real video frame by frame, as swap tools work: the
recorded frame's face is replaced before encoding, so real and fake differ
only in the face. Every fake is at full resolution with the colour correction
swap tools apply (Reinhard transfer in Lab over the face), and its pasted face
carries neither the camera's resampling nor its noise. Four kinds:
`face_swap` (another person, feathered alpha), `poisson_swap` (another person,
Poisson cloning), `partial_face` (mouth or eyes of another person only) and
`self_warp` (the same face re-posed and blended back at a partial ratio).

    python -m deepfake_detection.sample_data OUT --videos 96 --seed 0
"""

import argparse
import dataclasses
import json
import os
import string
from typing import List, Optional, Sequence, Tuple

import cv2
import imageio_ffmpeg
import numpy as np
import skimage
import skimage.data

from deepfake_detection import face_geometry
from deepfake_detection.sample_swaps import MANIPULATIONS, Swap, changed_mask, draw_swap, manipulate

DEFAULT_FRAME_SIZE = (320, 240)
FPS = 15
PART_NAME = "dfdc_train_part_0"
# H.264 constant rate factors of FaceForensics++'s light and heavy compression.
COMPRESSION_LEVELS = {"c23": 23, "c40": 40}
# One scene in TWO_PERSON_EVERY shows two people; its fakes swap both.
TWO_PERSON_EVERY = 8
_BACKGROUNDS = ("coffee", "rocket", "brick", "grass", "gravel", "chelsea", "hubble_deep_field", "immunohistochemistry")
# MTCNN's mean landmarks on the LFW subset, as fractions of the crop (measured on 40 faces, std about 0.04).
_LFW_LANDMARKS = ((0.256, 0.354), (0.602, 0.339), (0.426, 0.539), (0.296, 0.722), (0.591, 0.711))
# LFW faces are upscaled to this size before anything else, as a camera would see them at full resolution.
_PORTRAIT_SIZE = 200
# The photographs with a face, and MTCNN's landmarks on them.
_PHOTOS = {
    "astronaut": ((204, 100), (245, 102), (224, 126), (202, 139), (244, 140)),
    "camera": ((234, 147), (251, 149), (250, 167), (228, 179), (243, 180)),
}
# Skin-like RGB tints for the grey LFW faces.
_TINTS = ((1.0, 0.82, 0.68), (0.95, 0.78, 0.62), (0.85, 0.66, 0.52), (1.0, 0.86, 0.76), (0.7, 0.53, 0.42))


@dataclasses.dataclass(frozen=True)
class FaceSource:
    """A person: an RGB image and the five landmarks of its face; `portrait` when the image is a tight crop."""

    image: np.ndarray
    landmarks: np.ndarray
    portrait: bool


def load_faces() -> List[FaceSource]:
    """The two photographs with a face (astronaut, cameraman), then 100 tinted LFW faces, upscaled."""
    faces = []
    for name, landmarks in _PHOTOS.items():
        image = getattr(skimage.data, name)()
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        faces.append(FaceSource(image, np.array(landmarks, np.float64), portrait=False))
    lfw = np.load(os.path.join(os.path.dirname(skimage.__file__), "data", "lfw_subset.npy"))[:100]
    landmarks = np.array(_LFW_LANDMARKS) * _PORTRAIT_SIZE
    for number, grey in enumerate(lfw):
        size = (_PORTRAIT_SIZE, _PORTRAIT_SIZE)
        grey = cv2.resize((grey * 255).astype(np.float32), size, interpolation=cv2.INTER_CUBIC)
        tint = np.array(_TINTS[number % len(_TINTS)], np.float32)
        faces.append(FaceSource(np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8), landmarks, portrait=True))
    return faces


def load_background(name: str) -> np.ndarray:
    image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3]


def _portrait_canvas(face: FaceSource, background: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """An LFW crop with surroundings: its border smeared outwards, fading to a background far from the face."""
    size = face.image.shape[0]
    pad = size
    extended = cv2.copyMakeBorder(face.image, pad, pad, pad, pad, cv2.BORDER_REPLICATE).astype(np.float32)
    smeared = cv2.GaussianBlur(extended, (0, 0), size * 0.12)
    inside = np.zeros(extended.shape[:2], np.uint8)
    inside[pad : pad + size, pad : pad + size] = 1
    outside_distance = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    inside_distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    signed = (outside_distance - inside_distance)[..., None]
    smear = np.clip((signed + 0.06 * size) / (0.2 * size), 0, 1)
    content = smear * smeared + (1 - smear) * extended
    backdrop = cv2.resize(background, content.shape[1::-1]).astype(np.float32)
    fade = np.clip((signed - 0.35 * size) / (0.5 * size), 0, 1)
    canvas = fade * backdrop + (1 - fade) * content
    return canvas.astype(np.uint8), face.landmarks + pad


def _side_by_side(left: Tuple[np.ndarray, np.ndarray], right: Tuple[np.ndarray, np.ndarray]):
    """Two portrait canvases overlapped with a soft vertical crossfade between the people: a two-person scene."""
    (left_image, left_marks), (right_image, right_marks) = left, right
    height, width = left_image.shape[:2]
    shift = int(width * 0.43)
    joined = np.zeros((height, width + shift, 3), np.float32)
    joined[:, :width] = left_image
    ramp = np.clip((np.arange(width + shift) - 0.68 * width) / (0.07 * width), 0, 1)[None, :, None]
    placed = np.zeros_like(joined)
    placed[:, shift:] = right_image
    joined = (1 - ramp) * joined + ramp * placed
    return joined.astype(np.uint8), [left_marks, right_marks + [shift, 0]]


@dataclasses.dataclass
class Scene:
    """What a camera records over time: a canvas with faces, the camera path, light and noise."""

    canvas: np.ndarray
    landmarks: List[np.ndarray]
    frames: int
    frame_size: Tuple[int, int]
    seed: int

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        width, height = self.frame_size
        marks = np.concatenate(self.landmarks)
        self._centre = marks.mean(axis=0)
        _, _, eye_w, mouth_h = face_geometry.face_axes(self.landmarks[0])
        face_height = 2.2 * mouth_h
        share = rng.uniform(0.3, 0.55) if len(self.landmarks) == 1 else rng.uniform(0.2, 0.3)
        self._scale = share * height / face_height
        self._zoom_drift = rng.uniform(-0.08, 0.08)
        self._angle = rng.uniform(-8, 8)
        self._tilt = rng.uniform(-3, 3)
        self._offset = rng.uniform(-0.12, 0.12, size=2) * (width, height)
        self._pan = rng.uniform(-0.1, 0.1, size=2) * (width, height)
        self._shear = rng.uniform(-0.08, 0.08)
        self._gain = rng.uniform(0.75, 1.15) * rng.uniform(0.93, 1.07, size=3)
        self._gamma = rng.uniform(0.8, 1.25)
        self._noise = rng.uniform(1.0, 3.0)

    def camera(self, t: int) -> np.ndarray:
        """The affine map from canvas to frame at frame t."""
        width, height = self.frame_size
        phase = t / max(1, self.frames - 1)
        scale = self._scale * (1 + self._zoom_drift * phase)
        matrix = cv2.getRotationMatrix2D(tuple(self._centre), self._angle + self._tilt * phase, scale)
        matrix[0, 1] += self._shear * scale
        target = np.array([width / 2, height / 2]) + self._offset + self._pan * phase
        matrix[:, 2] += target - self._centre
        return matrix

    def landmarks_at(self, t: int) -> List[np.ndarray]:
        """Every face's landmarks in frame t's pixels."""
        matrix = self.camera(t)
        return [marks @ matrix[:, :2].T + matrix[:, 2] for marks in self.landmarks]

    def film(self) -> List[np.ndarray]:
        """The frames the camera records of the scene."""
        rng = np.random.default_rng(self.seed + 1)
        frames = []
        for t in range(self.frames):
            frame = cv2.warpAffine(
                self.canvas, self.camera(t), self.frame_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            ).astype(np.float32)
            frame = 255 * (np.clip(frame * self._gain, 0, 255) / 255) ** self._gamma
            frame += rng.normal(0, self._noise, frame.shape)
            frames.append(np.clip(frame, 0, 255).astype(np.uint8))
        return frames


CODECS = {
    "h264": ("libx264", ["-preset", "fast"]),
    "hevc": ("libx265", ["-preset", "fast", "-tag:v", "hvc1", "-x265-params", "log-level=error"]),
    "vp9": ("libvpx-vp9", ["-b:v", "0", "-deadline", "realtime", "-cpu-used", "8"]),
}


def write_video(path: str, frames_rgb: Sequence[np.ndarray], crf: int, fps: int = FPS, codec: str = "h264") -> None:
    """Encodes RGB frames (yuv420p) at rate factor `crf` with the ffmpeg that imageio-ffmpeg ships.

    `codec` is a key of `CODECS`: H.264 for the sample data, HEVC and VP9 for
    benchmarks that must decode what real uploads use.
    """
    if codec not in CODECS:
        raise ValueError(f"Unknown codec {codec!r}; expected one of {sorted(CODECS)}")
    encoder, flags = CODECS[codec]
    height, width = frames_rgb[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(
        path,
        (width, height),
        fps=fps,
        codec=encoder,
        quality=None,
        pix_fmt_out="yuv420p",
        macro_block_size=2,
        output_params=["-crf", str(crf), *flags, "-threads", "1"],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for frame in frames_rgb:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def _video_name(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(string.ascii_lowercase), size=10)) + ".mp4"


def make_scene(
    faces: List[FaceSource],
    people: Sequence[int],
    background: np.ndarray,
    frames: int,
    frame_size: Tuple[int, int],
    seed: int,
) -> Scene:
    """A scene of one or two `people` (indices into `faces`), each flipped at random, over `background`."""
    rng = np.random.default_rng(seed)
    sides = []
    for person in people:
        face = faces[person]
        if rng.random() < 0.5:
            flipped = face.image[:, ::-1].copy()
            marks = face.landmarks[[1, 0, 2, 4, 3]] * [-1, 1] + [face.image.shape[1] - 1, 0]
            face = FaceSource(flipped, marks, face.portrait)
        if face.portrait:
            sides.append(_portrait_canvas(face, background))
        else:
            sides.append((face.image, face.landmarks))
    if len(sides) == 1:
        return Scene(sides[0][0], [sides[0][1]], frames, frame_size, seed)
    canvas, landmarks = _side_by_side(sides[0], sides[1])
    return Scene(canvas, landmarks, frames, frame_size, seed)


@dataclasses.dataclass(frozen=True)
class PlannedVideo:
    """One video of a generated dataset before it is filmed: its scene, its swap (None for a real video) and
    its metadata.json row."""

    name: str
    scene: Scene
    swap: Optional[Swap]
    metadata: dict

    def frames(self) -> List[np.ndarray]:
        """The RGB frames written to the file, before encoding."""
        frames = self.scene.film()
        if self.swap is None:
            return frames
        return [manipulate(frame, self.scene.landmarks_at(t), self.swap) for t, frame in enumerate(frames)]

    def changed_mask(self, t: int) -> np.ndarray:
        """`changed_mask` of frame t: all zeros for a real video."""
        width, height = self.scene.frame_size
        if self.swap is None:
            return np.zeros((height, width), np.float32)
        return changed_mask((height, width), self.scene.landmarks_at(t), self.swap)


def plan(
    num_videos: int, seed: int = 0, seconds: float = 2.0, frame_size: Tuple[int, int] = DEFAULT_FRAME_SIZE
) -> List[PlannedVideo]:
    """The videos `generate` writes for these arguments, reals first, without filming them.

    Every random draw happens here, so a benchmark replays a written
    dataset's fakes (and what each changed, `changed_mask`) from its seed.
    Scenes take people in turn from every face that ships with scikit-image;
    the fakes cycle through the manipulations and the scenes through the
    compression levels, so each kind appears at each level.
    """
    if num_videos < 2:
        raise ValueError(f"--videos must be at least 2 (one real and one fake), got {num_videos}")
    rng = np.random.default_rng(seed)
    faces = load_faces()
    portraits = [n for n, face in enumerate(faces) if face.portrait]
    backgrounds = [load_background(name) for name in _BACKGROUNDS]
    num_scenes = (num_videos + 1) // 2
    frames = max(2, int(round(seconds * FPS)))
    order = rng.permutation(len(faces))
    levels = list(COMPRESSION_LEVELS)
    videos, casts = [], []
    for number in range(num_scenes):
        people = [int(order[number % len(order)])]
        if number % TWO_PERSON_EVERY == TWO_PERSON_EVERY - 1:
            people = [int(rng.choice(portraits)), int(rng.choice(portraits))]
        background = backgrounds[number % len(backgrounds)]
        scene = make_scene(faces, people, background, frames, frame_size, int(rng.integers(2**31)))
        level = levels[(number + number // len(MANIPULATIONS)) % len(levels)]
        metadata = {"label": "REAL", "split": "train", "original": None, "compression": level}
        videos.append(PlannedVideo(_video_name(rng), scene, None, metadata))
        casts.append(people)
    for number in range(num_videos - num_scenes):
        original, people = videos[number % num_scenes], casts[number % num_scenes]
        manipulation = MANIPULATIONS[number % len(MANIPULATIONS)]
        donors = [faces[int(rng.choice([p for p in portraits if p != person]))] for person in people]
        swap = draw_swap(manipulation, donors, rng)
        metadata = {
            "label": "FAKE",
            "split": "train",
            "original": original.name,
            "manipulation": manipulation,
            "compression": original.metadata["compression"],
        }
        videos.append(PlannedVideo(_video_name(rng), original.scene, swap, metadata))
    return videos


def generate(
    output_dir: str,
    num_videos: int,
    seed: int = 0,
    seconds: float = 2.0,
    frame_size: Tuple[int, int] = DEFAULT_FRAME_SIZE,
) -> str:
    """Writes `num_videos` videos (half real, half fake, as `plan` draws them) and a DFDC `metadata.json`;
    returns the part folder."""
    part_dir = os.path.join(output_dir, PART_NAME)
    os.makedirs(part_dir, exist_ok=True)
    metadata = {}
    for video in plan(num_videos, seed, seconds, frame_size):
        write_video(
            os.path.join(part_dir, video.name), video.frames(), COMPRESSION_LEVELS[video.metadata["compression"]]
        )
        metadata[video.name] = video.metadata
    with open(os.path.join(part_dir, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=1, sort_keys=True)
    return part_dir


def drifted_copy(source_dir: str, output_dir: str, brightness: float = 0.6, scale: float = 0.75, crf: int = 38) -> str:
    """A copy of a generated dataset whose videos look as if another source sent them: darker (pixel values
    times `brightness`), smaller (frames scaled by `scale`) and more compressed (rate factor `crf`); the labels
    stay. For the drift checks between spans; returns the part folder."""
    source_part, part_dir = os.path.join(source_dir, PART_NAME), os.path.join(output_dir, PART_NAME)
    os.makedirs(part_dir, exist_ok=True)
    with open(os.path.join(source_part, "metadata.json")) as f:
        metadata = json.load(f)
    for name in metadata:
        capture = cv2.VideoCapture(os.path.join(source_part, name))
        frames = []
        ok, frame = capture.read()
        while ok:
            small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(cv2.convertScaleAbs(small, alpha=brightness), cv2.COLOR_BGR2RGB))
            ok, frame = capture.read()
        capture.release()
        write_video(os.path.join(part_dir, name), frames, crf)
    with open(os.path.join(part_dir, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=1, sort_keys=True)
    return part_dir


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir")
    parser.add_argument("--videos", type=int, default=96, help="number of videos, about half of them fake")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each video")
    parser.add_argument("--height", type=int, default=DEFAULT_FRAME_SIZE[1], help="frame height (4:3 frames)")
    args = parser.parse_args(argv)
    frame_size = (args.height * 4 // 3, args.height)
    part_dir = generate(args.output_dir, args.videos, args.seed, args.seconds, frame_size)
    print(f"Wrote {args.videos} videos and metadata.json to {part_dir}")


if __name__ == "__main__":
    main()
