"""Evaluation against the world's ground truth."""
