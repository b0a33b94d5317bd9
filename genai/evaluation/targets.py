"""Which model a backend scores for 'base' and 'tuned'.

On CPU, vLLM's LoRA kernels fail on batched prompt log-probabilities (what every loglikelihood
task asks for), so the vllm and endpoint backends score a LoRA run through its merged model
there; merged and adapter outputs agree to float precision. GPUs serve the adapter by name.
"""

from __future__ import annotations

from dataclasses import replace

from genai.serving.artifact import ServeTarget


def base_target(target: ServeTarget) -> ServeTarget:
    """The model training started from, for every method (LoRA, merged, full fine-tuning), formatted
    with the artifact's template (the same prompts as the tuned one)."""
    return replace(target, model=target.base or target.model, adapter=None, adapter_name=None, lora_rank=None)


def tuned_target(target: ServeTarget, *, gpu: bool) -> ServeTarget:
    """The fine-tuned model: the adapter by name on GPUs; on CPU the run's merged model (merged once, recorded)."""
    if target.adapter is None or gpu or target.run_dir is None:
        return target
    from genai.runs import Run
    from genai.training.export import merge_run

    run = Run(target.run_dir)
    merged = run.merged_dir
    if not (merged / "config.json").exists():
        merge_run(run)
    return ServeTarget(
        model=str(merged),
        model_name=target.default_name,
        artifact_dir=merged,
        trust_remote_code=target.trust_remote_code,
        run_dir=target.run_dir,
        base=target.base,
    )
