"""JSON Schemas of the project's file formats and payloads, loaded by name."""
