"""Video decoding (PyAV) into RGB frames."""
