"""Datasets: readers for real layouts, the synthetic street-scene generator, joint augmentations."""
