# Metadata lives in pyproject.toml; this shim keeps `setup.py` for tools
# that still look for it.
from setuptools import setup

setup()
