"""Stable-Diffusion-family checkpoints the user already has on disk, run with diffusers."""
