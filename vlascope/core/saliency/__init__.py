"""Saliency: pixel and token ISS (interventional saliency) and baselines."""

# Here, free of torch, so the CLI can offer the names without importing the engine.
METHODS = ("iss", "token-iss", "attention-rollout", "attention-last", "token-norm", "gradient")

# ISS estimators (iss.py explains each): the toolkit's definition, the same with less
# variance, and our earlier per-camera RISE masks.
ESTIMATORS = ("toolkit", "toolkit-improved", "rise", "rise-improved")
