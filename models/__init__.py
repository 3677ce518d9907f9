"""Defect models behind the `Inspector` interface, and their packages."""

from models.base import DefectClass, Inspector, ModelInfo, Prediction, Thresholds
from models.errors import ModelError

__all__ = ["DefectClass", "Inspector", "ModelError", "ModelInfo", "Prediction", "Thresholds"]
