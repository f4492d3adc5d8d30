"""Studio's desktop front end: the only place that imports Qt."""
