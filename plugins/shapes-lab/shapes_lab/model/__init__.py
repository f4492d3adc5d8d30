"""Training the built-in model: configurations, data, the training loop, ONNX export."""
