"""What each check analysed, described without its pixels: per-face statistics for drift (docs/drift.md).

For every face the verdict read: the ingest's own input description
(`deepfake_detection.ingest.input_description.face_look`: brightness,
contrast, sharpness, blockiness of the face box in the source frame), the
face's size (shorter side of its box) and detector confidence, and the frame
size. These are the features the pipeline's examples carry, so the service's
uploads and a version's training statistics compare feature by feature.
"""

from typing import Dict, List, Sequence

from deepfake_detection import contract
from deepfake_detection.evaluation.drift import FEATURES
from deepfake_detection.ingest.input_description import face_look
from deepfake_detection.ingest.sampling import SampledFrame

# Where `analyse_upload` leaves the statistics in an answer; `DetectionService.analyse` takes them out into the
# history, so users' answers do not change.
INPUT_STATS_FIELD = "input_stats"
_DECIMALS = 4


def face_statistics(frames: Sequence[SampledFrame], faces: Sequence[dict]) -> List[Dict[str, float]]:
    """One dict of the drift `FEATURES` per face of an answer (each with its `frame_index` and `box`)."""
    images = {frame.index: frame.image for frame in frames}
    statistics = []
    for face in faces:
        image = images[face["frame_index"]]
        x, y, width, height = face["box"]
        described = {
            **face_look(image, face["box"]),
            contract.FACE_SIZE_KEY: int(min(width, height)),
            contract.FACE_CONFIDENCE_KEY: face["confidence"],
            contract.FRAME_WIDTH_KEY: int(image.shape[1]),
            contract.FRAME_HEIGHT_KEY: int(image.shape[0]),
        }
        statistics.append({key: _rounded(described[key]) for key in FEATURES})
    return statistics


def _rounded(value: float) -> float:
    """Whole numbers (sizes) stay integers, as in the training examples; the rest are rounded to keep rows short."""
    return value if isinstance(value, int) else round(float(value), _DECIMALS)
