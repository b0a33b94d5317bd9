"""One declaration of the vLLM engine settings genai uses, rendered three ways.

`EngineOptions` is built once from what is served (a ServeTarget) and the recipe's `serve`
section, then rendered as `vllm serve` flags (genai serve, the eval endpoint backend), as
`vllm.LLM(...)` keyword arguments (genai generate) and as lm-eval's vllm model_args (eval's
vllm backend), the way vLLM's own EngineArgs feeds its CLI and its Python API. So every path
runs the engine with the same defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from genai.recipe import ServeSection
from genai.serving.artifact import ServeTarget


@dataclass(frozen=True)
class LoraModule:
    """A LoRA adapter served by name beside its base model."""

    name: str
    path: str
    max_rank: int


# attribute -> (`vllm serve` flag, LLM(...) keyword, lm-eval model_arg); None: not rendered there.
_VALUES = {
    "model": ("--model", "model", "pretrained"),
    "tokenizer": ("--tokenizer", "tokenizer", "tokenizer"),
    "served_model_name": ("--served-model-name", None, None),
    "dtype": ("--dtype", "dtype", "dtype"),
    "max_model_len": ("--max-model-len", "max_model_len", "max_model_len"),
    "max_num_seqs": ("--max-num-seqs", "max_num_seqs", "max_num_seqs"),
    "gpu_memory_utilization": ("--gpu-memory-utilization", "gpu_memory_utilization", "gpu_memory_utilization"),
    # lm-eval passes each task's own stop sequences, as its hf backend does, so backends agree.
    "generation_config": ("--generation-config", "generation_config", None),
    # The server applies the template; genai generate passes it per call; lm-eval reads the tokenizer's.
    "chat_template": ("--chat-template", None, None),
    "seed": ("--seed", "seed", "seed"),
}
_SWITCHES = {
    "trust_remote_code": ("--trust-remote-code", "trust_remote_code", "trust_remote_code"),
    "enforce_eager": ("--enforce-eager", "enforce_eager", "enforce_eager"),
}


@dataclass(frozen=True)
class EngineOptions:
    """The settings of one vLLM engine (see the module docstring)."""

    model: str
    tokenizer: str
    served_model_name: str
    dtype: str = "auto"
    trust_remote_code: bool = False
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    enforce_eager: bool = False
    gpu_memory_utilization: float | None = None
    generation_config: str | None = None
    chat_template: str | None = None
    seed: int | None = None
    lora: LoraModule | None = None
    # vLLM's CPU LoRA kernels index the stacked adapters with each token's slot, and a request without an
    # adapter has slot -1: Python's last slot. With one slot that is the adapter itself, so a base-model
    # request batched beside an adapter request was answered by the adapter. A second, empty slot makes
    # -1 a zero adapter (tests/serving/test_server.py asks both at once).
    max_loras: int = 1
    tool_call_parser: str | None = None  # the family's, when the artifact was trained on tools
    extra_args: tuple[str, ...] = ()

    @classmethod
    def build(cls, target: ServeTarget, serve: ServeSection, *, gpu: bool, seed: int | None = None) -> EngineOptions:
        """The options for serving `target` with `serve` settings on this machine."""
        art = target.artifact_dir
        lora = None
        if target.adapter is not None:
            lora = LoraModule(target.adapter_name or "adapter", str(target.adapter), target.lora_rank or 16)
        template = art / "chat_template.jinja"
        return cls(
            model=target.model,
            # The artifact's tokenizer (an adapter folder holds one too): what training used.
            tokenizer=str(art),
            served_model_name=target.model_name,
            dtype=resolve_dtype(target, serve, gpu=gpu),
            trust_remote_code=target.trust_remote_code,
            max_model_len=serve.max_model_len,
            max_num_seqs=serve.max_num_seqs,
            enforce_eager=serve.enforce_eager if serve.enforce_eager is not None else not gpu,
            gpu_memory_utilization=serve.gpu_memory_utilization if gpu else None,
            # The artifact's own EOS and chat template, not the base model's.
            generation_config=str(art) if (art / "generation_config.json").exists() else None,
            chat_template=str(template) if template.exists() else None,
            seed=seed,
            lora=lora,
            max_loras=1 if gpu else 2,
            tool_call_parser=tool_parser(target, serve),
            extra_args=tuple(serve.extra_args),
        )

    def _rendered(self, column: int) -> dict:
        out = {}
        for attr, names in _VALUES.items():
            value = getattr(self, attr)
            if names[column] is not None and value is not None:
                out[names[column]] = value
        for attr, names in _SWITCHES.items():
            if getattr(self, attr):
                out[names[column]] = True
        return out

    def cli_args(self) -> list[str]:
        """`vllm serve` flags (host and port are the server's own)."""
        args: list[str] = []
        for flag, value in self._rendered(0).items():
            args += [flag] if value is True else [flag, str(value)]
        if self.lora is not None:
            args += [
                "--enable-lora",
                "--lora-modules",
                f"{self.lora.name}={self.lora.path}",
                "--max-lora-rank",
                str(self.lora.max_rank),
                "--max-loras",
                str(self.max_loras),
            ]
        if self.tool_call_parser is not None:
            args += ["--enable-auto-tool-choice", "--tool-call-parser", self.tool_call_parser]
        return args + list(self.extra_args)

    def llm_kwargs(self) -> dict:
        """Keyword arguments of `vllm.LLM` (the LoRA itself goes with each request)."""
        kwargs = self._rendered(1)
        if self.lora is not None:
            kwargs.update(enable_lora=True, max_lora_rank=self.lora.max_rank, max_loras=self.max_loras)
        return kwargs

    def lm_eval_args(self) -> dict:
        """lm-eval's `vllm` model_args."""
        args = self._rendered(2)
        if self.lora is not None:
            args.update(lora_local_path=self.lora.path, max_lora_rank=self.lora.max_rank, enable_lora=True)
        return args


def trained_on_tools(target: ServeTarget) -> bool:
    """Whether the run's training data had tools or tool calls (its manifest's data stats)."""
    from genai.runs import Run

    if target.run_dir is None or not Run(target.run_dir).manifest_file.exists():
        return False
    return bool(Run(target.run_dir).manifest().get("data", {}).get("tool_calls"))


def tool_parser(target: ServeTarget, serve: ServeSection) -> str | None:
    """The model family's vLLM tool-call parser when tools are served (serve.tools, or trained on tools)."""
    if not (serve.tools if serve.tools is not None else trained_on_tools(target)):
        return None
    from genai.errors import GenaiError
    from genai.families.registry import detect_family

    try:
        family = detect_family(target.base or target.model)
    except GenaiError as e:
        raise GenaiError(f"serve.tools: {e}", hint="name a known family's model, or set serve.tools=false") from None
    if family.tool_parser is None:
        raise GenaiError(
            f"serve.tools: vLLM has no tool-call parser for {family.title}: the endpoint could not return tool_calls",
            hint="serve without tools (serve.tools=false), or train a family that has one (genai families)",
        )
    return family.tool_parser


def resolve_dtype(target: ServeTarget, serve: ServeSection, *, gpu: bool) -> str:
    """On CPU, 'auto' keeps an fp32 artifact in fp32 (vLLM's CPU default would be bf16), so the
    engine computes what training produced; on GPUs vLLM's own choice stands."""
    if serve.dtype != "auto" or gpu:
        return serve.dtype
    for folder in (Path(target.model), target.artifact_dir):
        cfg = folder / "config.json"
        if cfg.exists():
            conf = json.loads(cfg.read_text())
            if (conf.get("dtype") or conf.get("torch_dtype")) == "float32":
                return "float32"
            break
    return "auto"
