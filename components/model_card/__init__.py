"""ModelCard: a card per evaluated model, written beside its pushed SavedModel."""

from components.model_card.component import ModelCard, ModelCardArtifact

__all__ = ["ModelCard", "ModelCardArtifact"]
