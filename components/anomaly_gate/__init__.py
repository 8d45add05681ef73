"""AnomalyGate: fail the run on data anomalies, naming the features."""

from components.anomaly_gate.component import AnomalyGate, DataValidationResult

__all__ = ["AnomalyGate", "DataValidationResult"]
