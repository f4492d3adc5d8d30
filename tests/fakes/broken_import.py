"""A plugin whose import raises (tests only)."""

raise ImportError("this plugin needs a library that is not installed")
