"""Augmentation: DSA's differentiable transforms (``dsa``) and the per-batch image
augmentations of the squeeze and relabel stages (``batch``: crops, flips, CutMix, Mixup)."""
