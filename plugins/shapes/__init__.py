"""The built-in model: its Shapes world, data, judge and (soon) the model itself."""
