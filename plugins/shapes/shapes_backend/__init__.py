"""The built-in model of the Shapes world (shared/SHAPES_DOMAIN.md): its language, its
two runtimes (ONNX Runtime and PyTorch) and the backends that run them."""
