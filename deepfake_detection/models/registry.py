"""All backbones by name."""

from typing import Dict

from deepfake_detection.models import applications, blend_resnet, compact_cnn, fusion, meso, resnext_lstm
from deepfake_detection.models.base import Backbone

BACKBONES: Dict[str, Backbone] = {
    backbone.name: backbone
    for module in (applications, meso, compact_cnn, blend_resnet, resnext_lstm, fusion)
    for backbone in module.BACKBONES
}


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}; expected one of {sorted(BACKBONES)}")
    return BACKBONES[name]
