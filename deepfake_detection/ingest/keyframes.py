"""Where to run the full face detector and where to follow faces instead: the geometry, without a detector.

Detection on every sampled frame at the frame's resolution is the ingest's
whole cost. Faces move little between sampled frames, so the detector runs in
full only on keyframes (every `detect_every`-th sampled frame and the last),
at a scale chosen from the size of the faces themselves; in the frames between
two keyframes MTCNN runs again, but only on a small square around where each
face of the neighbouring keyframes should be. That yields a real detection
(box, confidence, five landmarks) per face per frame at a fraction of the cost;
a face the square misses sends its frame back to full detection.
"""

from typing import List, Mapping, Optional, Sequence, Tuple

from deepfake_detection.ingest.faces import Box, Detection, iou

# MTCNN's smallest face is 20 px at detection scale: a face of `face_px` pixels
# there leaves room for faces down to 20 / face_px of the smallest one seen.
MTCNN_SMALLEST_FACE_PX = 20


def keyframe_positions(count: int, detect_every: int) -> List[int]:
    """Positions (into the sampled frames) of full detection: every `detect_every`-th frame and the last."""
    if count <= 0:
        return []
    positions = list(range(0, count, max(1, detect_every)))
    if positions[-1] != count - 1:
        positions.append(count - 1)
    return positions


def scale_for_faces(face_widths: Sequence[float], face_px: int, design_scale: float) -> float:
    """The detection scale that brings the smallest face to `face_px` pixels, never finer than `design_scale`."""
    if not face_widths or face_px <= 0:
        return design_scale
    return min(design_scale, face_px / max(1.0, min(face_widths)))


def _interpolate(a: Box, b: Box, fraction: float) -> Box:
    return tuple(int(round(va + (vb - va) * fraction)) for va, vb in zip(a, b, strict=True))  # type: ignore[return-value]


def predicted_boxes(before: Sequence[Detection], after: Sequence[Detection], fraction: float) -> List[Box]:
    """Where each face of two keyframes should be at `fraction` (0..1) of the way from the first to the second.

    A face found in both (greedy pairs by box overlap) moves linearly; a face
    found in only one of them stays where it was seen, so a face that enters
    or leaves between the keyframes is still looked for.
    """
    pairs: List[Tuple[int, int]] = []
    candidates = sorted(
        ((iou(a.box, b.box), i, j) for i, a in enumerate(before) for j, b in enumerate(after)), reverse=True
    )
    used_before, used_after = set(), set()
    for overlap, i, j in candidates:
        if overlap > 0 and i not in used_before and j not in used_after:
            pairs.append((i, j))
            used_before.add(i)
            used_after.add(j)
    boxes = [_interpolate(before[i].box, after[j].box, fraction) for i, j in pairs]
    boxes += [d.box for i, d in enumerate(before) if i not in used_before]
    boxes += [d.box for j, d in enumerate(after) if j not in used_after]
    return boxes


def plan_searches(keys: Sequence[int], found: Mapping[int, Sequence[Detection]]) -> List[Tuple[int, Box]]:
    """(position, predicted box) for every face expected in every frame between two keyframes."""
    searches = []
    for start, end in zip(keys, keys[1:], strict=False):
        for position in range(start + 1, end):
            fraction = (position - start) / (end - start)
            searches += [(position, box) for box in predicted_boxes(found[start], found[end], fraction)]
    return searches


def search_square(box: Box, factor: float) -> Tuple[int, int, int]:
    """The square (left, top, side) centred on a face box, `factor` times its longer side; it may leave the frame."""
    x, y, w, h = box
    side = int(round(factor * max(w, h, 1)))
    return int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2)), side


def best_match(predicted: Box, found: Sequence[Detection]) -> Optional[Detection]:
    """The detection in a search square that is the predicted face: the one overlapping the prediction most."""
    scored = [(iou(predicted, d.box), d) for d in found]
    scored = [(overlap, d) for overlap, d in scored if overlap > 0]
    return max(scored, key=lambda pair: (pair[0], pair[1].confidence))[1] if scored else None


def distinct_faces(detections: Sequence[Detection], min_iou: float = 0.5) -> List[Detection]:
    """One detection per face: two search squares that found the same face keep the more confident."""
    kept: List[Detection] = []
    for detection in sorted(detections, key=lambda d: -d.confidence):
        if all(iou(detection.box, other.box) < min_iou for other in kept):
            kept.append(detection)
    return kept
