"""Stand-in NVIDIA driver for tests (see harness.py)."""
