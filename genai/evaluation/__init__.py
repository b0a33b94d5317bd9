"""Evaluation with lm-evaluation-harness: bundled suites, hf / vllm / endpoint backends, gate."""
