"""Inference: the zero-shot-anomaly-detection pipeline, scoring image files, and pictures of the maps."""
