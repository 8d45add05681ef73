"""Turns TFDV anomalies into readable messages that name the split and the feature."""

from typing import Dict, List

from tensorflow_metadata.proto.v0 import anomalies_pb2


def anomaly_messages(anomalies_by_split: Dict[str, anomalies_pb2.Anomalies]) -> List[str]:
    """One line per anomaly: `split 'train', feature 'label': <short> (<description>)`."""
    messages = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            messages.append(f"split {split!r}, feature {feature!r}: {info.short_description} ({info.description})")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            messages.append(f"split {split!r}, whole dataset: {info.short_description} ({info.description})")
    return messages


class DataAnomaliesError(RuntimeError):
    """Raised to stop a run whose examples do not match the curated schema."""

    def __init__(self, messages: List[str]):
        self.messages = messages
        super().__init__(
            "Data validation failed: the examples do not match the curated schema, so the run stops before "
            "training.\n  " + "\n  ".join(messages)
        )
