"""Sparse autoencoders that split a policy layer's activations into interpretable features."""

from .atlas_format import AtlasFormatError, export_atlas, load_atlas_sae
from .io import SAEMismatchError, load_sae, sae_folder, save_sae
from .model import SAE, SAEConfig, SAEReport
from .train import TrainResult, evaluate_sae, train_sae

__all__ = ["SAE", "AtlasFormatError", "SAEConfig", "SAEMismatchError", "SAEReport",
           "TrainResult", "evaluate_sae", "export_atlas", "load_atlas_sae", "load_sae",
           "sae_folder", "save_sae", "train_sae"]
