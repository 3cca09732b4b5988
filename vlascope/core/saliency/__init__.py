"""Saliency: pixel and token ISS (interventional saliency) and baselines."""
