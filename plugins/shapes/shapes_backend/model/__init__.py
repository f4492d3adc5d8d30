"""The built-in DALL-E-style model: image and text tokenizers, transformer, ranker."""
