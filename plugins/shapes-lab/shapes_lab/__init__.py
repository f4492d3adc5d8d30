"""The Shapes model's lab: data, training, ONNX export, the judge and evaluation.

Not the runtime: a user's install needs only `shapes_backend`."""
