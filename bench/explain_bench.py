"""Does the map of what looks manipulated point at what a fake changed? And what does it cost a face?

Goal: the map's peak lies inside the changed region for at least 70 % of
the faces of each part-of-face kind (partial_face's mouth-only and
eyes-only edits) and at least 90 % of the faces of each whole-face kind
(face_swap, poisson_swap, self_warp), above a baseline that always points at
the crop's centre.

Held-out sample fakes are replayed from their seed (`sample_data.plan`), so
the changed pixels of every frame are known (`PlannedVideo.changed_mask`:
the region is where more than half a pixel is the pasted face). Faces are
found and cropped by the ingest's own path (`find_faces`, as the service
does); the changed region is cut out of each face's margin crop box
(`margin_crop_box`). Per kind it reports the pointing game (the peak cell's
centre inside the region) and the share of the map's mass on the region:
for what the detection service answers (`served`: the `explain`
signature's maps, each mixed with its person's, `person_maps`), for the
signature's maps alone (with a locator, its map weighted by the input
gradient; the locator's own map beside it), for each method and feature
grid asked for, and for the centre baseline (its point is the crop's
centre, its map a centred Gaussian of a quarter of the crop). Then it
exports the first model with its `explain` signature to a temporary folder,
checks that the signature's maps are the method's and its probabilities
`serving_default`'s (detection unchanged), and times `serving_default`
against `explain` in milliseconds per face.

    python bench/explain_bench.py --model-uri RUN/pipeline_root/Trainer.blend_resnet/model/ID [MORE ...] \\
        --videos /work/heldout11:11 /work/heldout12:12 [--json outputs/bench/explain_bench.json]

Several models (the same recipe under several seeds, say) are scored on the
same faces, each over all sets and per set; the first is also timed.
"""

import argparse
import dataclasses
import os
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import _common
import cv2
import numpy as np
import tensorflow as tf

from deepfake_detection import sample_data
from deepfake_detection.evaluation.person_maps import with_person_maps
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.faces import margin_crop_box
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import read_dataset
from deepfake_detection.ingest.sampling import sample_frames
from deepfake_detection.ingest.videos import find_faces
from deepfake_detection.models import data, explain, export
from serving.client.local_model import InProcessModel

PART_GOAL, WHOLE_GOAL = 0.7, 0.9
BENCH = _common.Bench(
    "explain_bench",
    f"the map's peak inside the changed region for at least {PART_GOAL:.0%} of the faces of each part-of-face kind "
    f"and {WHOLE_GOAL:.0%} of each whole-face kind, on held-out sample fakes",
)
# The locator's own maps (models/locator.py), reported beside what the signature serves with it.
LOCATOR = "locator"
# What the detection service answers: the signature's maps mixed with each person's (evaluation/person_maps.py).
SERVED = "served"
PART_KINDS = ("partial_face:mouth", "partial_face:eyes")
# Where a pixel counts as changed: more of it is the pasted face than the recorded one.
CHANGED = 0.5
# The resolution at which a face's changed region is kept (its share per map cell is pooled from it).
REGION_SIZE = 64


@dataclasses.dataclass(frozen=True)
class Face:
    """A fake face as the model sees it, and the share of each of its crop's pixels that the fake changed."""

    kind: str
    crop: bytes
    region: np.ndarray  # float32 [REGION_SIZE, REGION_SIZE], 1 where changed
    person: str = ""  # the video and track: faces of one person across frames


def kind_of(video: sample_data.PlannedVideo) -> str:
    """The manipulation, with the part for partial_face: mouth-only and eyes-only edits are scored apart."""
    swap = video.swap
    return f"{swap.kind}:{swap.part}" if swap.kind == "partial_face" else swap.kind


def fake_faces(folder: str, seed: int, ingest_config: IngestConfig, detector: FaceDetector) -> List[Face]:
    """The faces of every fake video of a sample-data folder written with `seed`, with their changed regions."""
    records = read_dataset(folder)
    planned = {v.name: v for v in sample_data.plan(len(records), seed)}
    faces = []
    for record in sorted(records, key=lambda r: r.path):
        video = planned[os.path.basename(record.path)]
        if video.swap is None:
            continue
        _, frames = sample_frames(record.path, ingest_config)
        found = find_faces(frames, detector, ingest_config)
        for number, (track, crops) in enumerate(zip(found.tracks, found.crops, strict=True)):
            for detection, crop in zip(track.detections, crops, strict=True):
                changed = video.changed_mask(detection.frame_index)
                left, top, width, height = margin_crop_box(detection.box, *changed.shape[::-1], ingest_config.margin)
                inside = (changed[top : top + height, left : left + width] > CHANGED).astype(np.float32)
                region = cv2.resize(inside, (REGION_SIZE, REGION_SIZE), interpolation=cv2.INTER_AREA)
                person = f"{video.name}:{number}"
                faces.append(Face(kind_of(video), crop, (region > 0.5).astype(np.float32), person))
    return faces


def score(maps: np.ndarray, regions: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(peak inside the region, share of the map's mass on it) per face, for maps [N, g, g]."""
    count, grid = maps.shape[:2]
    flat = maps.reshape(count, -1)
    rows, cols = np.divmod(flat.argmax(axis=1), grid)
    scale = REGION_SIZE / grid
    points_y = ((rows + 0.5) * scale).astype(int)
    points_x = ((cols + 0.5) * scale).astype(int)
    hit = regions[np.arange(count), points_y, points_x] > 0.5
    hit &= flat.max(axis=1) > 0  # an empty map points nowhere
    cells = np.stack([cv2.resize(r, (grid, grid), interpolation=cv2.INTER_AREA) for r in regions])
    mass = flat.sum(axis=1)
    share = np.divide((maps * cells).reshape(count, -1).sum(axis=1), mass, out=np.zeros(count), where=mass > 0)
    return hit, share


def centre_baseline(count: int, grid: int = REGION_SIZE) -> np.ndarray:
    """The map that always points at the crop's centre: a centred Gaussian of a quarter of the crop."""
    axis = (np.arange(grid) + 0.5) / grid - 0.5
    gaussian = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * 0.25**2))
    return np.repeat(gaussian[None], count, axis=0).astype(np.float32)


def per_kind(kinds: Sequence[str], hit: np.ndarray, share: np.ndarray) -> Dict[str, dict]:
    rows = {}
    for kind in sorted(set(kinds)):
        chosen = np.array([k == kind for k in kinds])
        goal = PART_GOAL if kind in PART_KINDS else WHOLE_GOAL
        pointing = float(hit[chosen].mean())
        rows[kind] = {
            "faces": int(chosen.sum()),
            "pointing": round(pointing, 3),
            "mass_share": round(float(share[chosen].mean()), 3),
            "goal": goal,
            "meets_goal": pointing >= goal,
        }
    return rows


def explained(model, faces: List[Face], method: str, grid: Optional[int] = None, batch: int = 32) -> np.ndarray:  # noqa: ANN001
    """Maps [N, g, g] of the faces by `method` at `grid`, from the same decoded pixels the signature sees."""
    return mapped(lambda pixels: explain.explainer(model, method, grid)(pixels)[1], faces, batch)


def mapped(draw, faces: List[Face], batch: int = 32) -> np.ndarray:  # noqa: ANN001 - pixels -> maps
    """`draw`'s maps [N, g, g] of the faces, from the same decoded pixels the signature sees."""
    function = tf.function(draw)
    maps = []
    for start in range(0, len(faces), batch):
        pixels = data.decode_images(tf.constant([f.crop for f in faces[start : start + batch]]))
        maps.append(function(pixels).numpy())
    return np.concatenate(maps)


def ms_per_face(call, crops: List[bytes], batch: int, repeats: int) -> float:  # noqa: ANN001 - a client method
    """The best of `repeats` passes over the crops in batches, in milliseconds per face (after one warm-up)."""
    call(crops[:batch])
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(crops), batch):
            call(crops[start : start + batch])
        best = min(best, time.perf_counter() - started)
    return 1000 * best / len(crops)


def signature_maps(model, locator, faces: List[Face]) -> np.ndarray:  # noqa: ANN001 - Keras models
    """The maps the `explain` signature serves for these faces: located gradient with a locator, else the input
    gradient."""
    if locator is None:
        return explained(model, faces, explain.DEFAULT_METHOD)
    served = explain.located_gradient(model, locator)
    return mapped(lambda pixels: served(pixels)[1], faces)


def method_figures(  # noqa: ANN001 - Keras models
    model, locator, faces: List[Face], signature: np.ndarray, served: np.ndarray, args: argparse.Namespace
) -> Dict[str, dict]:
    """Per method (and grid), per kind: pointing game and mass share over `faces`, beginning with the served
    maps and the signature's (`signature_maps`, computed once by the caller)."""
    kinds, regions = [f.kind for f in faces], np.stack([f.region for f in faces])
    methods: Dict[str, dict] = {f"{SERVED}@{explain.GRID}": per_kind(kinds, *score(served, regions))}
    if locator is not None:
        methods[f"{explain.LOCATED_GRADIENT}@{explain.GRID}"] = per_kind(kinds, *score(signature, regions))
        locator_maps = mapped(lambda pixels: locator(pixels, training=False), faces)
        methods[f"{LOCATOR}@{explain.GRID}"] = per_kind(kinds, *score(locator_maps, regions))
    for method in args.methods:
        if method == explain.INPUT_GRADIENT:
            methods[f"{method}@{explain.GRID}"] = per_kind(kinds, *score(explained(model, faces, method), regions))
            continue
        for grid in [g for g in args.grids if explain.feature_layer(model, g) is not None]:
            methods[f"{method}@{grid}"] = per_kind(kinds, *score(explained(model, faces, method, grid), regions))
    return methods


def print_figures(title: str, rows_by_method: Dict[str, dict]) -> None:
    for name, rows in rows_by_method.items():
        print(f"\n{title}: {name}")
        for kind, row in rows.items():
            print(
                f"  {kind:20s} faces {row['faces']:4d}  pointing {row['pointing']:.3f} (goal {row['goal']:.2f}"
                f"{', met' if row['meets_goal'] else ', missed'})  mass share {row['mass_share']:.3f}"
            )


def signature_figures(model, locator, faces: List[Face], reference: np.ndarray, timing_faces: int) -> dict:  # noqa: ANN001
    """Exports the model, checks that `explain` serves the method's maps (`reference`, those of the first 32
    faces) and `serving_default`'s probabilities, and times both signatures per face."""
    with tempfile.TemporaryDirectory() as export_dir:
        export.export_saved_model(model, export_dir, locator=locator)
        client = InProcessModel(export_dir)
        crops = [f.crop for f in faces][:timing_faces]
        maps = client.explain(crops[:32]).heatmaps
        difference = np.abs(client.explain(crops).probabilities - client.predict(crops).probabilities).max()
        timing = {
            "predict_ms_per_face": ms_per_face(client.predict, crops, 32, 3),
            "explain_ms_per_face": ms_per_face(client.explain, crops, 32, 3),
            "faces": len(crops),
            "batch": 32,
            "cpu_threads": os.cpu_count(),
        }
    timing["overhead_ms_per_face"] = timing["explain_ms_per_face"] - timing["predict_ms_per_face"]
    return {
        "largest_probability_difference_explain_vs_serving_default": float(difference),
        "signature_matches_method": bool(np.allclose(maps, reference, atol=1e-4)),
        "signature_grid": list(maps.shape[1:]),
        "timing": {k: round(v, 2) if isinstance(v, float) else v for k, v in timing.items()},
    }


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument(
        "--model-uri", nargs="+", required=True, help="Trainer model folders (keras/model.keras inside), e.g. seeds"
    )
    parser.add_argument("--videos", nargs="+", required=True, help="FOLDER:SEED of sample_data folders")
    parser.add_argument("--methods", nargs="+", default=list(explain.METHODS), choices=explain.METHODS)
    parser.add_argument("--grids", nargs="+", type=int, default=[8, 16, 32], help="feature-map sides to try")
    parser.add_argument("--frames-per-video", type=int, default=8)
    parser.add_argument("--timing-faces", type=int, default=256)
    args = BENCH.parse_args(parser)

    ingest_config = IngestConfig(frames_per_video=args.frames_per_video)
    detector = FaceDetector.from_config(ingest_config)
    sets: Dict[str, List[Face]] = {}
    for item in args.videos:
        folder, seed = item.rsplit(":", 1)
        sets[item] = fake_faces(folder, int(seed), ingest_config, detector)
    faces = [face for found in sets.values() for face in found]
    kinds = [f.kind for f in faces]
    print(f"{len(faces)} fake faces; kinds: { {k: kinds.count(k) for k in sorted(set(kinds))} }")

    results: Dict[str, dict] = {"faces": len(faces), "goal": {"part_of_face": PART_GOAL, "whole_face": WHOLE_GOAL}}
    regions = np.stack([f.region for f in faces])
    results["centre_baseline"] = per_kind(kinds, *score(centre_baseline(len(faces)), regions))
    print_figures("all sets", {"centre baseline": results["centre_baseline"]})
    results["models"] = {}
    for uri in args.model_uri:
        model, locator = export.load_keras(uri), export.load_locator(uri)
        signature = signature_maps(model, locator, faces)
        served = with_person_maps(signature, [f.person for f in faces])
        figures = {"methods": method_figures(model, locator, faces, signature, served, args)}
        print_figures(uri, figures["methods"])
        figures["served_per_set"] = {}
        start = 0
        for item, found in sets.items():
            maps = served[start : start + len(found)]
            figures["served_per_set"][item] = per_kind(
                [f.kind for f in found], *score(maps, regions[start : start + len(found)])
            )
            start += len(found)
        print_figures(f"{uri}, {SERVED} per set", figures["served_per_set"])
        if uri == args.model_uri[0]:
            figures.update(signature_figures(model, locator, faces, signature[:32], args.timing_faces))
            same = figures["signature_matches_method"]
            print(f"\nexplain signature: grid {figures['signature_grid']}, same maps: {same}")
            difference = figures["largest_probability_difference_explain_vs_serving_default"]
            print(f"largest difference of its probabilities from serving_default's: {difference:.2g}")
            print("per face: " + ", ".join(f"{k} {v}" for k, v in figures["timing"].items()))
        results["models"][uri] = figures
    BENCH.write(args, results)


if __name__ == "__main__":
    main()
