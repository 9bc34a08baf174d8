"""Built-in preset bundles (YAML), shipped in the wheel as ``destination._presets``."""
