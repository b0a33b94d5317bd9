"""Loaded by every Python process the tests start (PYTHONPATH): no traffic beyond loopback."""

from genai_netguard import install

install()
