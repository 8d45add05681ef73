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
from deepfake_detection.ingest.input_description import face_look
from deepfake_detection.ingest.sampling import SampledFrame

# Where `analyse_upload` leaves the statistics in an answer; `DetectionService.analyse` takes them out into the
# history, so users' answers do not change.
INPUT_STATS_FIELD = "input_stats"
# The numeric features each face records, in the order `drift` reports them.
FEATURES = (
    contract.BRIGHTNESS_KEY,
    contract.CONTRAST_KEY,
    contract.SHARPNESS_KEY,
    contract.BLOCKINESS_KEY,
    contract.FACE_SIZE_KEY,
    contract.FACE_CONFIDENCE_KEY,
    contract.FRAME_WIDTH_KEY,
    contract.FRAME_HEIGHT_KEY,
)
_DECIMALS = 4


def face_statistics(frames: Sequence[SampledFrame], faces: Sequence[dict]) -> List[Dict[str, float]]:
    """One dict of `FEATURES` per face of an answer (each with its `frame_index` and `box`)."""
    images = {frame.index: frame.image for frame in frames}
    statistics = []
    for face in faces:
        image = images[face["frame_index"]]
        x, y, width, height = face["box"]
        described = {
            **face_look(image, face["box"]),
            contract.FACE_SIZE_KEY: min(width, height),
            contract.FACE_CONFIDENCE_KEY: face["confidence"],
            contract.FRAME_WIDTH_KEY: image.shape[1],
            contract.FRAME_HEIGHT_KEY: image.shape[0],
        }
        statistics.append({key: round(float(described[key]), _DECIMALS) for key in FEATURES})
    return statistics
