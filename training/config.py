"""``chatbot train`` settings: one dataclass, parsed by HfArgumentParser, validated next to each field."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatbot.errors import SettingsError

# name -> (n_layer, n_embd, n_head, context)
SIZE_PRESETS = {
    "tiny": (2, 64, 2, 128),  # tests and smoke runs
    "mini": (4, 256, 4, 128),  # ~5 M parameters with an 8k vocabulary: minutes on a laptop CPU
    "small": (6, 384, 6, 256),
    "gpt2": (12, 768, 12, 1024),  # GPT-2 small's shape, from scratch
}
LOSS_MODES = ("reply", "all-turns")


@dataclass
class TrainConfig:
    """Fine-tune GPT-2 (or any causal LM) on dialogues, retrain a chatbot, or train one from scratch."""

    output: str = field(metadata={"help": "folder for checkpoints and the final chatbot"})
    data: str = field(default="chitchat", metadata={"help": "chitchat, a .json/.txt/.jsonl path, or hf:NAME[:CONFIG]"})
    # -- where the weights come from: exactly one of the three
    base_model: str | None = field(
        default=None, metadata={"help": "hub id or folder of a plain causal LM (default: gpt2); our tokens are added"}
    )
    init_from: str | None = field(
        default=None, metadata={"help": "a chatbot checkpoint of ours to retrain; keeps its tokens and settings"}
    )
    from_scratch: bool = field(
        default=False, metadata={"help": "new GPT-2 of --size plus a byte-level BPE tokenizer trained on the data"}
    )
    size: str = field(default="mini", metadata={"help": f"from-scratch size preset: {', '.join(SIZE_PRESETS)}"})
    n_layer: int | None = field(default=None, metadata={"help": "from scratch: layers (overrides --size)"})
    n_embd: int | None = field(default=None, metadata={"help": "from scratch: width (overrides --size)"})
    n_head: int | None = field(default=None, metadata={"help": "from scratch: attention heads (overrides --size)"})
    context: int | None = field(default=None, metadata={"help": "from scratch: context length (overrides --size)"})
    vocab_size: int = field(default=8192, metadata={"help": "from scratch: BPE vocabulary size"})
    dropout: float = field(default=0.0, metadata={"help": "from scratch: dropout (short runs underfit; 0 is best)"})
    # -- the dialogue format and the loss
    loss: str = field(default="reply", metadata={"help": "reply (TransferTransfo) or all-turns (DialoGPT, packed)"})
    max_history: int | None = field(default=None, metadata={"help": "utterances before the reply (default 5)"})
    max_length: int | None = field(
        default=None, metadata={"help": "tokens per example (default: the context, at most 256)"}
    )
    # -- optimisation
    epochs: float = field(default=1.0, metadata={"help": "passes over the training split"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimizer steps (overrides --epochs)"})
    batch_size: int = field(default=16, metadata={"help": "examples per device per step"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    lr: float | None = field(
        default=None, metadata={"help": "peak learning rate (default 1e-3 from scratch, else 5e-5)"}
    )
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of steps spent warming up"})
    scheduler: str = field(default="cosine", metadata={"help": "learning-rate schedule: cosine, linear, constant..."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    eval_steps: int = field(default=500, metadata={"help": "evaluate on the valid split every N steps"})
    save_steps: int = field(default=200, metadata={"help": "checkpoint every N steps (what --resume restarts from)"})
    logging_steps: int = field(default=20, metadata={"help": "log the loss every N steps"})
    eval_limit: int = field(
        default=100, metadata={"help": "at most this many valid examples per evaluation (0: the whole split)"}
    )
    limit: int | None = field(default=None, metadata={"help": "use only the first N training dialogues"})
    seed: int = field(default=42, metadata={"help": "random seed (data order, initialisation)"})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 mixed precision (GPUs, recent CPUs)"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in --output"})
    skip_bad: bool = field(default=False, metadata={"help": "skip and count malformed dialogues instead of stopping"})
    test_perplexity: bool = field(
        default=True, metadata={"help": "after training, measure per-token and per-word perplexity on the test split"}
    )
    test_limit: int = field(
        default=200, metadata={"help": "test perplexity over the first N test utterances (0: the whole split)"}
    )

    def __post_init__(self):
        sources = [self.base_model is not None, self.init_from is not None, self.from_scratch]
        if sum(sources) > 1:
            raise SettingsError("use only one of --base-model, --init-from and --from-scratch")
        if not any(sources):
            self.base_model = "gpt2"
        if self.size not in SIZE_PRESETS:
            raise SettingsError(f"unknown --size {self.size!r}; choose one of {', '.join(SIZE_PRESETS)}")
        if self.loss not in LOSS_MODES:
            raise SettingsError(f"unknown --loss {self.loss!r}; choose reply or all-turns")
        for name in ("batch_size", "grad_accum", "eval_steps", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("eval_limit", "test_limit"):
            if getattr(self, name) < 0:
                raise SettingsError(f"--{name.replace('_', '-')} must be >= 0 (0 means the whole split)")
        if self.max_steps == 0 or self.epochs <= 0:
            raise SettingsError("--max-steps and --epochs must be positive (max-steps -1 means: use --epochs)")
        if self.lr is not None and not self.lr > 0:
            raise SettingsError(f"--lr must be > 0 (got {self.lr})")
        if not 0 <= self.dropout < 1:
            raise SettingsError(f"--dropout must be in [0, 1) (got {self.dropout})")
        if self.max_history is not None and self.max_history < 1:
            raise SettingsError("--max-history must be >= 1 (it counts utterances of both speakers)")
        if self.max_length is not None and self.max_length < 8:
            raise SettingsError(f"--max-length must be >= 8 tokens (got {self.max_length})")
        if self.vocab_size < 300:
            raise SettingsError(f"--vocab-size must be >= 300 (got {self.vocab_size}): 256 bytes plus merges")
        if not 0 <= self.warmup_ratio < 1:
            raise SettingsError(f"--warmup-ratio must be in [0, 1) (got {self.warmup_ratio})")
        from transformers import SchedulerType

        schedulers = [s.value for s in SchedulerType]
        if self.scheduler not in schedulers:
            raise SettingsError(f"unknown --scheduler {self.scheduler!r}; choose one of {', '.join(schedulers)}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(n_layer, n_embd, n_head, context) for a from-scratch model."""
        preset = SIZE_PRESETS[self.size]
        shape = tuple(
            v if v is not None else p for v, p in zip((self.n_layer, self.n_embd, self.n_head, self.context), preset)
        )
        n_layer, n_embd, n_head, context = shape
        if n_embd % n_head:
            raise SettingsError(f"--n-embd {n_embd} must be divisible by --n-head {n_head}")
        return shape

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-3 if self.from_scratch else 5e-5)
