"""genai: YAML recipe to a fine-tuned, scored, served LLM."""

__version__ = "0.1.0"
