"""The cache tests use the Redis fixtures of ``tests/conftest.py``."""
