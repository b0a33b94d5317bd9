"""Data: load -> format -> chat template -> tokenize -> mask -> pack, cached on disk."""
