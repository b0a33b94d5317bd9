"""The recipe: one typed, nested object that every stage receives.

Loading is YAML -> dotted CLI overrides -> pydantic validation -> path resolution.
Errors name the file, the field path and (when it came from YAML) the line; this module
never imports torch so `genai validate` stays fast.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from genai.errors import GenaiError
from genai.yamlio import line_for, load_yaml_with_lines

# Names of settings whose values are secrets (tokens, keys, passwords): never printed or saved.
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|KEY|CREDENTIAL)", re.I)


class Section(BaseModel):
    """A recipe section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(Section):
    """model: the base model and how to load it."""

    name_or_path: str = Field(
        description="Hub id, local folder, or a built-in id such as 'genai/tiny-llama'; or an earlier run to start "
        "from: its run folder, <output_dir>/<recipe>/latest, or a recipe file (its newest finished run)."
    )
    parent_adapter: Literal["continue", "merge"] = Field(
        "continue",
        description="When name_or_path is a LoRA run: continue training its adapter, or merge it into its base "
        "and train a new adapter (or every weight) on the merged model.",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(False, description="Run model code from the hub. Off unless you trust it.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] | None = None
    chat_template: str | None = Field(
        None, description="Named template (see `genai templates`) or a .jinja file; default: the tokenizer's."
    )
    load_in_4bit: bool = Field(False, description="QLoRA: load the base in 4-bit (needs a CUDA GPU and bitsandbytes).")
    chat_template_kwargs: dict[str, bool | int | float | str] = Field(
        default_factory=dict,
        description="Template switches used in training and baked into the artifact's template as defaults, "
        "so the server renders the same, e.g. {enable_thinking: false} for Qwen3.",
    )

    @field_validator("chat_template_kwargs")
    @classmethod
    def _template_names(cls, value: dict) -> dict:
        bad = [k for k in value if not k.isidentifier()]
        if bad:
            raise ValueError(f"template variable names must be identifiers, got {bad}")
        return value


class DataSource(Section):
    """One dataset: a local file or folder, an s3:// URI, or a hub dataset, and its format."""

    path: str | None = Field(None, description="Local .jsonl/.json/.csv/.parquet file or folder, or an s3:// URI.")
    hub: str | None = Field(None, description="Hub dataset id (loaded with `datasets`).")
    name: str | None = Field(None, description="Hub dataset config name.")
    split: str = "train"
    revision: str | None = None
    format: Literal["alpaca", "messages", "sharegpt", "completion", "preference", "unpaired"] = "alpaca"
    columns: dict[str, str] = Field(
        default_factory=dict, description="Map the format's field names to your column names, e.g. {output: response}."
    )
    system_prompt: str | None = Field(None, description="System message prepended to every conversation.")
    limit: int | None = Field(None, ge=1, description="Use only the first N records.")

    @model_validator(mode="after")
    def _one_location(self) -> DataSource:
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of 'path' (local file or s3://) or 'hub' (dataset id)")
        return self


class DataSection(Section):
    """data: train and eval sources and how they become token rows."""

    train: list[DataSource] = Field(min_length=1)
    eval: list[DataSource] = Field(default_factory=list, description="Held-out data for eval loss and exact match.")
    eval_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Hold out this share of train when `eval` is empty.")
    max_length: int = Field(1024, ge=8, le=1_048_576)
    overlong: Literal["truncate", "drop"] = "truncate"
    loss_on: Literal["completion", "all"] = Field(
        "completion", description="completion: train only on assistant/response tokens; all: every token."
    )
    packing: bool = Field(True, description="Pack samples into rows of max_length (no attention across samples).")
    cache_dir: str | None = Field(None, description="Preprocessing cache; default $GENAI_HOME/cache/data.")


class LoraSection(Section):
    """lora: the adapter (or, disabled, full fine-tuning)."""

    enabled: bool = Field(True, description="false = full fine-tuning.")
    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = Field("all-linear", description="'all-linear' or module names.")
    use_dora: bool = False
    modules_to_save: list[str] = Field(default_factory=list)


class DistributedSection(Section):
    """train.distributed: how many processes and machines, with which accelerate profile."""

    profile: Literal["none", "ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = "none"
    num_processes: int | None = Field(None, ge=1, description="Default: every visible GPU.")
    num_machines: int = Field(1, ge=1)
    machine_rank: int = Field(0, ge=0)
    main_process_ip: str | None = None
    main_process_port: int | None = Field(None, ge=1, le=65535)


class ExactMatchSection(Section):
    """train.exact_match: held-out exact match by greedy generation before and after training."""

    limit: int = Field(100, ge=0, description="Held-out items scored by greedy generation (0 = off).")
    max_new_tokens: int = Field(16, ge=1)


class DpoSection(Section):
    """train.dpo: direct preference optimisation (train.method: dpo) on preference pairs."""

    beta: float = Field(0.1, gt=0, description="Strength of the pull towards the reference model (higher: closer).")
    loss_type: Literal["sigmoid", "ipo", "hinge"] = Field(
        "sigmoid", description="sigmoid: DPO; ipo: IPO (per-token average log-ratios); hinge: SLiC's hinge loss."
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="sigmoid only: the share of pairs assumed mislabelled (conservative DPO)."
    )
    sft_weight: float = Field(
        0.0,
        ge=0,
        description="Add this times the chosen answer's mean NLL to each pair's loss (RPO; TRL's rpo_alpha): keeps "
        "the chosen answers likely while the margin grows.",
    )


class OrpoSection(Section):
    """train.orpo: odds-ratio preference optimisation (train.method: orpo): SFT on the chosen answer plus an
    odds-ratio term on preference pairs, with no reference model."""

    beta: float = Field(0.1, gt=0, description="Weight of the odds-ratio term beside the SFT loss (ORPO's lambda).")


class KtoSection(Section):
    """train.kto: Kahneman-Tversky optimisation (train.method: kto) on answers labelled good or bad."""

    beta: float = Field(0.1, gt=0, description="Strength of the pull towards the reference model.")
    desirable_weight: float = Field(1.0, gt=0, description="Weight of the losses of answers labelled good.")
    undesirable_weight: float = Field(1.0, gt=0, description="Weight of the losses of answers labelled bad.")


class RewardSpec(Section):
    """One GRPO reward function and its weight in the total reward."""

    name: str = Field(
        description="A built-in reward (see `genai rewards`), or your own 'module:function' "
        "(needs train.grpo.trust_reward_code: true)."
    )
    weight: float = Field(1.0, description="Its weight in the total reward.")
    args: dict[str, Any] = Field(default_factory=dict, description="The reward's own options, e.g. {pattern: ...}.")


class GrpoSection(Section):
    """train.grpo: group relative policy optimisation (train.method: grpo): sample several answers per prompt,
    score them with reward functions, and make the better-than-average ones likelier."""

    num_generations: int = Field(4, ge=2, le=256, description="Answers sampled per prompt (the group).")
    max_completion_length: int = Field(64, ge=1, description="Most tokens an answer may have.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the answers.")
    top_p: float = Field(1.0, gt=0, le=1.0)
    beta: float = Field(
        0.04, ge=0, description="KL coefficient towards the starting model (0: no reference model is computed)."
    )
    scale_rewards: bool = Field(True, description="Divide each group's advantages by its reward spread.")
    mask_truncated: bool = Field(
        True,
        description="Answers cut at max_completion_length (no stop token) teach nothing but the KL term "
        "(DAPO's overlong filtering): a model is not rewarded for answers that never end.",
    )
    rewards: list[RewardSpec] = Field(
        default_factory=lambda: [RewardSpec(name="exact_match")], min_length=1, description="Rewards, summed by weight."
    )
    trust_reward_code: bool = Field(
        False, description="Allow rewards named 'module:function' (your own Python code runs in training)."
    )
    generator: Literal["auto", "transformers", "vllm"] = Field(
        "auto",
        description="What samples the answers: transformers' generate on the training model, or a vLLM engine in "
        "the training process that takes the policy's weights after each optimizer step (one process). auto: "
        "vLLM on a CUDA GPU where it is installed, else transformers.",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, lt=1, description="generator vllm on a GPU: the share of GPU memory its engine takes."
    )
    vllm_kv_cache_gib: int = Field(1, ge=1, description="generator vllm on CPU: GiB of memory for its KV cache.")


class TrainSection(Section):
    """train: the optimization, its schedule, logging, checkpoints and output."""

    method: Literal["sft", "dpo", "orpo", "kto", "grpo"] = Field(
        "sft",
        description="sft: supervised fine-tuning; dpo: preference pairs against the starting model; orpo: SFT "
        "plus an odds-ratio term on pairs; kto: answers labelled good or bad; grpo: sampled answers scored "
        "by reward functions.",
    )
    dpo: DpoSection = Field(default_factory=DpoSection)
    orpo: OrpoSection = Field(default_factory=OrpoSection)
    kto: KtoSection = Field(default_factory=KtoSection)
    grpo: GrpoSection = Field(default_factory=GrpoSection)
    output_dir: str = Field("runs", description="Runs go to <output_dir>/<recipe name>/<run id>/.")
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps; overrides epochs.")
    micro_batch_size: int = Field(4, ge=1, description="Rows per device per forward pass.")
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(2e-4, gt=0, le=1.0)
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    seed: int = 42
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False
    liger: Literal["auto", True, False] = Field(
        "auto",
        description="Liger's fused GPU kernels (norms, RoPE, SwiGLU, output layer + loss): auto uses them where "
        "liger-kernel is installed and a CUDA GPU is present; true requires both; false never.",
    )
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (1 is robust on shared cores).")
    logging_steps: int = Field(10, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="Eval loss every N steps (and at the end).")
    save_steps: int | None = Field(None, ge=1, description="Checkpoint every N steps.")
    save_total_limit: int = Field(2, ge=1, description="Keep the last K checkpoints.")
    checkpoint_dir: str | None = Field(None, description="Default RUN/checkpoints (SageMaker: /opt/ml/checkpoints).")
    merge: bool = Field(False, description="Also write a standalone merged model (LoRA only).")
    exact_match: ExactMatchSection = Field(default_factory=ExactMatchSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)


# Request headers a capture never stores, whatever serve.capture.headers lists (credentials).
NEVER_CAPTURED = re.compile(r"(authorization|cookie|api[-_]?key|token|secret|password|credential)", re.I)


class CaptureSection(Section):
    """serve.capture: requests and responses to JSONL, inside vLLM's server (its ASGI middleware hook)."""

    enabled: bool = Field(False, description="Record /v1/chat/completions and /v1/completions traffic.")
    rate: float = Field(1.0, ge=0, le=1, description="Share of requests recorded (decided by request id).")
    folder: str | None = Field(None, description="Where capture-<n>.jsonl files go; default: RUN/capture.")
    max_bytes: int = Field(64 * 2**20, ge=1024, description="Start the next file past this size.")
    max_files: int = Field(10, ge=1, description="Keep this many files; the oldest is deleted.")
    redact: list[str] = Field(
        default_factory=list, description="Regexes: matches in prompts and answers are stored as [REDACTED]."
    )
    headers: list[str] = Field(
        default_factory=lambda: ["content-type", "user-agent", "x-request-id"],
        description="Request headers stored (Authorization, cookies and keys never are).",
    )

    @field_validator("redact")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {pattern!r} ({exc})") from None
        return value

    @field_validator("headers")
    @classmethod
    def _no_credentials(cls, value: list[str]) -> list[str]:
        bad = [h for h in value if NEVER_CAPTURED.search(h)]
        if bad:
            raise ValueError(f"{bad} would store credentials; such headers are never captured")
        return [h.lower() for h in value]


class ServeSection(Section):
    """serve: how vLLM serves the artifact."""

    host: str = Field("127.0.0.1", description="Bind address; loopback unless you choose otherwise.")
    port: int = Field(8000, ge=0, le=65535, description="0 picks a free port.")
    artifact: Literal["auto", "adapter", "merged"] = Field(
        "auto", description="auto: base + LoRA by name for adapter runs, the model itself for full fine-tunes."
    )
    served_name: str | None = Field(None, description="Name the fine-tuned model answers to; default: recipe name.")
    api_key: SecretStr | None = Field(None, description="Require this bearer token (prefer api_key_env).")
    api_key_env: str = Field("GENAI_API_KEY", description="Environment variable holding the API key, if set.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_model_len: int | None = Field(None, ge=16)
    # Whole GiB: vLLM reads VLLM_CPU_KVCACHE_SPACE as an integer and fails at start on "0.5".
    kv_cache_gib: int = Field(1, ge=1, description="CPU only: KV cache size in whole GiB (VLLM_CPU_KVCACHE_SPACE).")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="GPU only: share of GPU memory vLLM takes.")
    enforce_eager: bool | None = Field(None, description="Skip graph capture (faster start); default: on for CPU.")
    max_num_seqs: int | None = Field(None, ge=1)
    startup_timeout_s: float = Field(600, gt=0)
    tools: bool | None = Field(
        None, description="Serve with the model family's tool-call parser; default: when the training data had tools."
    )
    extra_args: list[str] = Field(default_factory=list, description="Passed to `vllm serve` as they are.")
    capture: CaptureSection = Field(default_factory=CaptureSection, description="Request capture (off by default).")


class GateRule(Section):
    """One gate rule: a minimum score, or a maximum drop against the base model."""

    task: str
    metric: str = Field(description="As lm-eval names it, e.g. exact_match,strip or acc,none (filter optional).")
    min: float | None = Field(None, description="Fine-tuned score must be at least this.")
    max: float | None = Field(
        None, description="Fine-tuned score must be at most this (lower-is-better metrics: toxicity, over-refusal)."
    )
    max_drop: float | None = Field(None, ge=0, description="Fine-tuned may be at most this much below base.")
    min_gain: float | None = Field(
        None, description="Fine-tuned must be at least this much above base (a chained run's base: its parent)."
    )

    @model_validator(mode="after")
    def _one_bound(self) -> GateRule:
        if sum(b is not None for b in (self.min, self.max, self.max_drop, self.min_gain)) != 1:
            raise ValueError("give exactly one of 'min', 'max', 'max_drop' or 'min_gain'")
        return self


class EndpointSection(Section):
    """eval.endpoint: an OpenAI-compatible endpoint to score."""

    url: str | None = Field(None, description="OpenAI-compatible base URL (.../v1); default: serve the run here.")
    model: str | None = Field(None, description="Model name at the endpoint; default: the run's served name.")
    chat: bool = Field(False, description="Use /chat/completions (generation tasks only).")
    api_key_env: str = "GENAI_API_KEY"
    num_concurrent: int = Field(8, ge=1)
    timeout_s: float = Field(120, gt=0)


class EvalSection(Section):
    """eval: lm-eval tasks, the backend that runs them, and the gate."""

    tasks: list[str] = Field(default_factory=list, description="Suites from eval/ or any lm-eval task name.")
    backend: Literal["hf", "vllm", "endpoint"] = "hf"
    num_fewshot: int | None = Field(None, ge=0)
    limit: float | None = Field(None, gt=0, description="Items per task (a fraction if < 1).")
    batch_size: int = Field(16, ge=1)
    apply_chat_template: bool = Field(True, description="Format prompts with the artifact's chat template.")
    system_instruction: str | None = None
    seed: int = 1234
    baseline: bool = Field(True, description="Also score the base model, for the before/after table.")
    suite_dirs: list[str] = Field(default_factory=list, description="More folders of task YAMLs.")
    endpoint: EndpointSection = Field(default_factory=EndpointSection)
    gate: list[GateRule] = Field(default_factory=list)


class TrackingSection(Section):
    """tracking: MLflow and TensorBoard."""

    mlflow: bool = Field(False, description="Log params, metrics, eval results and the artifact path to MLflow.")
    mlflow_uri: str | None = Field(
        None, description="Tracking URI; default: a local file store in <output_dir>/mlruns."
    )
    experiment: str | None = Field(None, description="MLflow experiment; default: the recipe name.")
    tensorboard: bool = Field(False, description="Write TensorBoard event files to RUN/tensorboard.")


class DeploySection(Section):
    """sagemaker.deploy: the endpoint serving the artifact."""

    instance_type: str = "ml.g5.2xlarge"
    instance_count: int = Field(1, ge=1)
    image: str | None = Field(None, description="Serving image; default: the AWS vLLM container for the region.")
    vllm_version: str = "0.30.0"
    artifact: Literal["adapter", "merged"] = Field("merged", description="merged is one model; adapter = base + LoRA.")
    max_model_len: int | None = Field(None, ge=16)
    endpoint_name: str | None = None
    inference_ami_version: str | None = "al2-ami-sagemaker-inference-gpu-3-1"
    accelerators: int = Field(1, ge=1, description="deploy --components: GPUs the base inference component takes.")
    min_memory_mb: int = Field(4096, ge=128, description="deploy --components: host memory the base takes.")


class SageMakerSection(Section):
    """sagemaker: the training job (and endpoint) settings."""

    role: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+", description="Execution role ARN.")
    bucket: str | None = Field(None, description="S3 bucket for code, data channels and outputs.")
    prefix: str = Field("genai", description="Key prefix inside the bucket.")
    region: str | None = None
    instance_type: str = "ml.g5.2xlarge"
    instance_count: int = Field(1, ge=1)
    volume_gb: int = Field(100, ge=1)
    max_runtime_s: int = Field(24 * 3600, ge=60)
    spot: bool = False
    max_wait_s: int | None = Field(None, ge=60, description="Spot: total wait including interruptions.")
    image: str | None = Field(None, description="Training image; default: the Hugging Face PyTorch training DLC.")
    transformers_version: str = "4.56.2"
    pytorch_version: str = "2.8.0"
    py_version: str = "py312"
    tags: dict[str, str] = Field(default_factory=dict)
    environment: dict[str, str] = Field(default_factory=dict)
    deploy: DeploySection = Field(default_factory=DeploySection)

    @model_validator(mode="after")
    def _spot_wait(self) -> SageMakerSection:
        if self.spot and self.max_wait_s is not None and self.max_wait_s < self.max_runtime_s:
            raise ValueError("max_wait_s must be at least max_runtime_s for spot training")
        return self


class SweepParam(Section):
    """One swept setting: a distribution to draw its values from."""

    distribution: Literal["log_uniform", "uniform", "int", "choice"]
    low: float | None = Field(None, description="log_uniform, uniform, int: the smallest value.")
    high: float | None = Field(None, description="log_uniform, uniform, int: the largest value.")
    values: list[Any] | None = Field(None, description="choice: the values to choose from.")

    @model_validator(mode="after")
    def _range(self) -> SweepParam:
        if self.distribution == "choice":
            if not self.values:
                raise ValueError("choice needs a non-empty 'values' list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"{self.distribution} needs 'low' and 'high'")
        if not self.low < self.high:
            raise ValueError(f"empty range: low {self.low} must be below high {self.high}")
        if self.distribution == "log_uniform" and self.low <= 0:
            raise ValueError(f"log_uniform needs low > 0 (got {self.low})")
        if self.distribution == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("int needs whole-number 'low' and 'high'")
        return self


class SweepSection(Section):
    """sweep: a hyperparameter search over this recipe (`genai sweep`); ignored by every other command."""

    parameters: dict[str, SweepParam] = Field(
        min_length=1, description="Dotted recipe keys (as in overrides, e.g. train.learning_rate) -> distribution."
    )
    objective: str = Field(
        "eval_loss",
        description="eval_loss, or task/metric from eval.tasks, e.g. quickstart_addition/exact_match,strip.",
    )
    direction: Literal["minimize", "maximize"] | None = Field(
        None, description="Default: minimize eval_loss, maximize an eval metric."
    )
    trials: int = Field(8, ge=1, le=10_000)
    timeout_s: float | None = Field(None, gt=0, description="Start no trial after this many seconds.")
    parallel: int = Field(1, ge=1, description="Trials at once.")
    prune: bool = Field(True, description="Stop a trial early when its held-out loss trails the others' (median).")
    seed: int = 0

    @property
    def goal(self) -> str:
        """minimize or maximize."""
        return self.direction or ("minimize" if self.objective == "eval_loss" else "maximize")


class RegistrySection(Section):
    """registry: `genai run` registers the artifact after a passed gate (any run: `genai register RUN`)."""

    mlflow: bool = Field(False, description="Register a version in the MLflow Model Registry (champion/challenger).")
    sagemaker: bool = Field(
        False, description="A model package in the SageMaker Model Registry (needs sagemaker.role and bucket)."
    )
    model_name: str | None = Field(None, description="Registered model name; default: the recipe name.")
    package_group: str | None = Field(
        None, description="SageMaker model package group; default: the model name (letters, digits and '-')."
    )


class Recipe(Section):
    """A whole recipe: what to fine-tune, on what, how, and how to score and serve it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Names the run folder.")
    description: str | None = None
    license: str | None = Field(None, description="License of the fine-tuned artifact (model card), e.g. apache-2.0.")
    model: ModelSection
    data: DataSection
    lora: LoraSection = Field(default_factory=LoraSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    serve: ServeSection = Field(default_factory=ServeSection)
    sagemaker: SageMakerSection = Field(default_factory=SageMakerSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    sweep: SweepSection | None = Field(None, description="A hyperparameter search over this recipe (genai sweep).")
    # Not `register`: pydantic models are ABCs, whose `register` method such a field would shadow.
    registry: RegistrySection = Field(
        default_factory=RegistrySection, description="Register the artifact after the gate (genai run)."
    )

    def public_dump(self) -> dict:
        """The recipe as plain data with secrets left out (never printed, logged or saved)."""
        data = self.model_dump(mode="json")
        if data["sweep"] is None:  # absent, as before sweeps existed: the same recipes keep the same hashes
            del data["sweep"]
        if data["registry"] == RegistrySection().model_dump(mode="json"):  # likewise: absent at its defaults
            del data["registry"]
        if data["serve"]["capture"] == CaptureSection().model_dump(mode="json"):  # likewise
            del data["serve"]["capture"]
        if data["serve"]["api_key"] is not None:
            data["serve"]["api_key"] = None
        env = data["sagemaker"]["environment"]  # the job gets these itself; a saved recipe must not hold them
        data["sagemaker"]["environment"] = {k: ("***" if SECRET_NAME.search(k) else v) for k, v in env.items()}
        return data

    def to_yaml(self) -> str:
        """The resolved recipe as YAML (secrets left out)."""
        return yaml.safe_dump(self.public_dump(), sort_keys=False)

    def content_hash(self) -> str:
        """sha256 of the resolved recipe (secrets left out): equal recipes, equal hashes."""
        blob = json.dumps(self.public_dump(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


# ----------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """'train.learning_rate=1e-4' -> (['train', 'learning_rate'], 1e-4); values parse as YAML."""
    if "=" not in text:
        raise GenaiError(f"override '{text}': expected KEY=VALUE, e.g. train.learning_rate=1e-4")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise GenaiError(f"override '{text}': empty key segment")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, (int, float)) and not isinstance(value, bool) and raw.strip().lower().startswith(("0x", "0o")):
        value = raw
    return [int(p) if p.isdigit() else p for p in key.split(".")], value


def apply_override(data: dict, keys: list[str | int], value: Any, text: str) -> None:
    """Set the value at a dotted key path, creating sections and appending to lists as needed."""
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        nxt = keys[i + 1]
        if isinstance(node, list):
            if not isinstance(key, int) or key >= len(node):
                raise GenaiError(f"override '{text}': index {key} is out of range (list has {len(node)} items)")
            node = node[key]
            continue
        if key not in node or node[key] is None:
            node[key] = [] if isinstance(nxt, int) else {}
        node = node[key]
    last = keys[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last > len(node):
            raise GenaiError(f"override '{text}': index {last} is out of range (list has {len(node)} items)")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    else:
        node[last] = value


# ----------------------------------------------------------------------------- errors


def _fields_at(loc: tuple) -> list[str]:
    """Field names valid at a location, for did-you-mean."""
    model: Any = Recipe
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _section_type(field.annotation)
    return list(model.model_fields) if model is not None else []


def _section_type(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def _format_errors(exc: ValidationError, source: str, lines: dict, overridden: set[tuple]) -> str:
    out = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        where = source
        if any(loc[: len(o)] == o for o in overridden):
            where = "command-line override"
        else:
            line = line_for(lines, loc)
            if line is not None:
                where = f"{source}:{line}"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            known = _fields_at(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            msg = f"unknown key '{loc[-1]}'" + (
                f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(known)}"
            )
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif "input" in err and err["type"] not in ("model_type",):
            msg = f"{msg} (got {err['input']!r})"
        out.append(f"{where}: {dotted}: {msg}")
    return "\n".join(out)


# ----------------------------------------------------------------------------- loading

_PATH_PREFIXES = ("./", "../", "~")


def _names_a_file(value: str) -> bool:
    """A chat template file, a parent recipe file, or <output_dir>/<recipe>/latest (a hub id has one slash)."""
    return value.endswith((".jinja", ".yaml", ".yml")) or (value.endswith("/latest") and value.count("/") >= 2)


def _resolve_paths(data: dict, base: Path, overridden: set[tuple]) -> None:
    """Relative paths in a recipe file are relative to that file; on the CLI, to the cwd."""
    cwd = Path.cwd()

    def fix(value: str, loc: tuple, always: bool) -> str:
        if not isinstance(value, str) or "://" in value or os.path.isabs(value):
            return value
        if not always and not value.startswith(_PATH_PREFIXES) and not _names_a_file(value):
            return value
        root = cwd if any(loc[: len(o)] == o for o in overridden) else base
        return str((root / os.path.expanduser(value)).resolve())

    data_sec = data.get("data") if isinstance(data.get("data"), dict) else {}
    for split in ("train", "eval"):
        for i, src in enumerate(data_sec.get(split) or []):
            if isinstance(src, dict) and isinstance(src.get("path"), str):
                src["path"] = fix(src["path"], ("data", split, i, "path"), always=True)
    eval_sec = data.get("eval") if isinstance(data.get("eval"), dict) else {}
    for i, d in enumerate(eval_sec.get("suite_dirs") or []):
        if isinstance(d, str):
            eval_sec["suite_dirs"][i] = fix(d, ("eval", "suite_dirs", i), always=True)
    model = data.get("model") if isinstance(data.get("model"), dict) else {}
    for key in ("name_or_path", "chat_template"):
        if isinstance(model.get(key), str):
            model[key] = fix(model[key], ("model", key), always=False)
    capture = (data.get("serve") or {}).get("capture") if isinstance(data.get("serve"), dict) else None
    if isinstance(capture, dict) and isinstance(capture.get("folder"), str):
        capture["folder"] = fix(capture["folder"], ("serve", "capture", "folder"), always=True)
    if isinstance(data_sec.get("cache_dir"), str):
        data_sec["cache_dir"] = fix(data_sec["cache_dir"], ("data", "cache_dir"), always=True)
    train = data.setdefault("train", {}) if isinstance(data.get("train", {}), dict) else {}
    for key in ("output_dir", "checkpoint_dir"):
        if isinstance(train.get(key), str):
            train[key] = fix(train[key], ("train", key), always=True)
    # The default stays "runs/ in the current folder", made absolute so that a run's saved recipe means the same.
    train.setdefault("output_dir", str(cwd / "runs"))


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load, override and validate a recipe. Raises GenaiError naming file, field and line."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".csv", ".parquet"):  # a common slip: the data file for the recipe
        raise GenaiError(
            f"{path}: this is a data file, not a recipe",
            hint="give the recipe YAML; it names its data under data.train, e.g. `genai init quickstart`",
        )
    data, lines = load_yaml_with_lines(path)
    return _from_yaml(data, lines, path, overrides)


def load_recipe_text(text: str, path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """load_recipe for a recipe's text not (yet) in its file, e.g. an editor's: errors name `path` and
    the text's lines, and relative paths are relative to `path`'s folder."""
    from genai.yamlio import parse_yaml_with_lines

    path = Path(path)
    data, lines = parse_yaml_with_lines(text, path)
    return _from_yaml(data, lines, path, overrides)


def _from_yaml(data, lines: dict, path: Path, overrides) -> Recipe:
    if data is None:
        raise GenaiError(f"{path}: the recipe is empty", hint="copy recipes/quickstart.yaml and edit it")
    if not isinstance(data, dict):
        raise GenaiError(f"{path}:1: a recipe must be a mapping of sections (model, data, lora, train)")
    data.setdefault("name", path.stem)
    return _build(data, overrides, source=str(path), lines=lines, base=path.resolve().parent)


def with_overrides(recipe: Recipe, overrides: list[str] | tuple[str, ...]) -> Recipe:
    """A recipe object with dotted overrides applied (paths in them relative to the current folder)."""
    if not overrides:
        return recipe
    return _build(recipe.model_dump(), overrides, source="recipe", lines={}, base=Path.cwd())


def _build(data: dict, overrides, *, source: str, lines: dict, base: Path) -> Recipe:
    overridden: set[tuple] = set()
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(data, keys, value, text)
        overridden.add(tuple(keys))
    _resolve_paths(data, base, overridden)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise GenaiError(_format_errors(exc, source, lines, overridden)) from None
    check_files(recipe, source, lines)
    return recipe


def check_files(recipe: Recipe, source: str, lines: dict) -> None:
    """Local data files and template files must exist before any work starts."""
    problems = []
    for split in ("train", "eval"):
        for i, src in enumerate(getattr(recipe.data, split)):
            if src.path and "://" not in src.path and not Path(src.path).exists():
                line = line_for(lines, ("data", split, i, "path"))
                where = f"{source}:{line}" if line else source
                problems.append(f"{where}: data.{split}.{i}.path: file not found: {src.path}")
    tmpl = recipe.model.chat_template
    if tmpl and tmpl.endswith(".jinja") and not Path(tmpl).exists():
        line = line_for(lines, ("model", "chat_template"))
        problems.append(f"{source}:{line or ''}: model.chat_template: file not found: {tmpl}")
    if problems:
        raise GenaiError("\n".join(problems), hint="paths in a recipe are relative to the recipe file")


def json_schema() -> dict:
    """The recipe's JSON schema (for editor completion)."""
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "genai recipe"
    return schema
