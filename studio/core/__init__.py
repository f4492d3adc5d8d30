"""Studio's core: plain Python, no Qt, and no heavy imports at module top."""
