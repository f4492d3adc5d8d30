"""The Shapes model's lab: data, training, ONNX export, the judge and evaluation (not the runtime)."""
