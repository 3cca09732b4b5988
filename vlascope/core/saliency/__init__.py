"""Saliency: pixel and token ISS (interventional saliency) and baselines."""

# Here, free of torch, so the CLI can offer the names without importing the engine.
METHODS = ("iss", "token-iss", "attention-rollout", "attention-last", "token-norm", "gradient")
# the methods that sample masks (their maps are noisy, made at N, pooled in time)
ISS_METHODS = ("iss", "token-iss")

# ISS estimators (iss.py explains each): the toolkit's definition, the same with less
# variance, and our earlier per-camera RISE masks.
ESTIMATORS = ("toolkit", "toolkit-improved", "rise", "rise-improved")
