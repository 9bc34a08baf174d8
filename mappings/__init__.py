"""Built-in mapping files (YAML), shipped in the wheel as ``destination._mappings``."""
