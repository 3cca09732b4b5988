"""Sparse autoencoders that split a policy layer's activations into interpretable features."""

from .io import SAEMismatchError, load_sae, save_sae
from .model import SAE, SAEConfig, SAEReport
from .train import TrainResult, evaluate_sae, train_sae

__all__ = ["SAE", "SAEConfig", "SAEMismatchError", "SAEReport", "TrainResult", "evaluate_sae",
           "load_sae", "save_sae", "train_sae"]
