"""Names the pipeline graph, its components and the run report share: the pipeline, its per-model component ids,
the ensemble's model name, and the code fingerprint's property key.

Kept apart from the feature contract (`contract.py`) because only the TFX side reads them: the graph builds the ids,
the report reads them back from the pipeline root, and serving needs only the ensemble's name.
"""

PIPELINE_NAME = "deepfake-detection"

# Component ids of one model's branch are "<kind>.<model name>", built and read only here.
TUNER = "Tuner"
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"
MODEL_CARD = "ModelCard"
BASELINE_RESOLVER = "LatestBlessedModel"


def node_id(kind: str, model_name: str) -> str:
    return f"{kind}.{model_name}"


def model_of(component_id: str) -> str:
    """The model name in a branch component's id (`Evaluator.meso4` -> `meso4`)."""
    kind, dot, name = component_id.partition(".")
    if not dot or not name:
        raise ValueError(f"{component_id!r} is not a per-model component id (<kind>.<model>)")
    return name


# A fingerprint of the code the custom components run, in their properties (local runs): TFX's cache keys
# on properties and inputs, not on code, and would otherwise reuse a Trainer's model after its code changed.
CODE_VERSION_KEY = "code_version"

# The model name of the weighted ensemble (a model of its own, pushed beside the backbones' models).
ENSEMBLE_MODEL = "ensemble"
