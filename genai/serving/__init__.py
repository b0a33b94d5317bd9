"""Serving: vLLM's own OpenAI-compatible server for a run's artifact, offline generation, chat."""
