"""Evaluation: video-level scoring rules, the TFMA video metric, and the blessing EvalConfig."""
