"""The training configuration: typed dataclasses, config files as Python, command-line overrides.

A config file is a Python file with `get_config() -> TrainConfig` (`train/configs/tiny.py`).
Any field can be overridden on the command line: `--config.optim.lr_encoder=3e-5`,
`--config.data.train.0.path=DIR` (list items by index), `--config.model.path=DIR`.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class ModelConfig:
    # "random": a fresh encoder (fields in `encoder`, tokenizer and base config from `path`);
    # "encoder": pretrained transformers encoder at `path` + a fresh GLiNER head;
    # "gliner": fine-tune the GLiNER directory at `path`.
    init: str = "random"
    path: str = ""
    encoder: dict = dataclasses.field(default_factory=dict)  # EncoderConfig overrides (random)
    # GLiNER head; None = the checkpoint's value (init="gliner") or the reference default
    hidden_size: int | None = None
    max_width: int | None = None
    dropout: float | None = None
    max_len: int | None = None
    # a fresh head's span mode (gliner_jax.modeling.families: "markerV0", "marker", ...,
    # "token_level" for the token-level model); fine-tuning keeps the checkpoint's
    span_mode: str | None = None
    compute_dtype: str = "float32"  # "bfloat16": bf16 compute, params stay in param_dtype
    param_dtype: str = "float32"


@dataclasses.dataclass
class DatasetConfig:
    path: str = ""              # a BIO / eval-bundle folder, a gliner .json / .jsonl file, or
                                # "tfds:gliner_ner/NAME" (train/tfds_data.py) read from data_dir
    split: str = "train"        # folders and "tfds:" datasets
    weight: float = 1.0         # mixing weight (normalised over the training sets)
    max_examples: int | None = None  # keep the first n examples
    data_dir: str = ""          # TFDS data_dir (local or mounted) of a "tfds:" path


@dataclasses.dataclass
class DataConfig:
    train: list[DatasetConfig] = dataclasses.field(default_factory=list)
    dev: DatasetConfig | None = None
    batch_size: int = 8                 # global: all hosts and accumulation steps together
    max_types: int = 25                 # reference max_types
    max_neg_type_ratio: int = 1         # reference max_neg_type_ratio
    sampled_negatives: int = 100        # reference get_negatives(sampled_neg=100)
    skip_errors: bool = False           # skip and count malformed lines instead of stopping
    min_tokens: int = 32                # smallest token bucket (T); buckets double from here
    min_words: int = 16                 # smallest word bucket (W)
    min_classes: int = 8                # smallest type bucket (C)
    max_tokens: int | None = None       # cap on T (default: the tokenizer's model_max_length)
    eval_batch_size: int = 16
    eval_threshold: float = 0.5


@dataclasses.dataclass
class LossConfig:
    """gliner 0.2.29 `UniEncoderSpanModel.loss` (TrainingArguments names in comments)."""

    alpha: float = -1.0          # focal_loss_alpha; < 0 disables
    gamma: float = 0.0           # focal_loss_gamma
    prob_margin: float = 0.0     # focal_loss_prob_margin
    label_smoothing: float = 0.0
    reduction: str = "sum"       # loss_reduction: "sum" | "mean" (over valid spans)
    negatives: float = 1.0       # keep-probability of negative terms when masking != "none"
    masking: str = "none"        # "none" | "global" | "label" | "span"
    use_span_width_weight: bool = False


@dataclasses.dataclass
class OptimConfig:
    lr_encoder: float = 1e-5       # params under token_rep_layer (reference learning_rate)
    lr_others: float = 5e-5        # everything else (reference others_lr)
    lr_labels: float | None = None  # a bi-encoder's labels encoder (None: lr_encoder)
    wd_labels: float | None = None  # its weight decay (None: wd_encoder)
    wd_encoder: float = 0.01       # (reference weight_decay)
    wd_others: float = 0.01        # (reference others_weight_decay)
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    schedule: str = "cosine"       # "cosine" | "linear" | "constant", after the warmup
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0     # <= 0: no clipping
    grad_accum: int = 1            # micro-batches per optimizer step


@dataclasses.dataclass
class TrainConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    num_steps: int = 1000
    seed: int = 0
    mesh: tuple[int, int, int] = (-1, 1, 1)   # (data, fsdp, tensor); -1 = remaining devices
    log_every: int = 10
    eval_every: int = 0            # 0: evaluate on the dev set only at the end
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    export: bool = True            # write DIR/model in the reference layout at the end
    # a step whose loss or gradient norm is not finite leaves the state unchanged and is logged
    # as skipped, this many times in the whole run; the next one stops it (0: the first stops it)
    skip_nonfinite: int = 0
    # XLA options for compiling the step, e.g. {"xla_backend_optimization_level": 0}: compiles
    # about twice as fast on CPU (tests, debugging) for slower steps
    xla_options: dict = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        d, o, lo = self.data, self.optim, self.loss
        problems = []
        if not d.train:
            problems.append("data.train is empty")
        if d.batch_size % o.grad_accum:
            problems.append(f"batch_size {d.batch_size} is not a multiple of grad_accum "
                            f"{o.grad_accum}")
        if lo.reduction not in ("sum", "mean"):
            problems.append(f"loss.reduction {lo.reduction!r} (sum or mean)")
        if lo.masking not in ("none", "global", "label", "span"):
            problems.append(f"loss.masking {lo.masking!r}")
        if o.schedule not in ("cosine", "linear", "constant"):
            problems.append(f"optim.schedule {o.schedule!r}")
        if self.model.init not in ("random", "encoder", "gliner"):
            problems.append(f"model.init {self.model.init!r} (random, encoder or gliner)")
        if self.model.init != "random" and not self.model.path:
            problems.append(f"model.init={self.model.init} needs --config.model.path=DIR")
        if self.skip_nonfinite < 0:
            problems.append("skip_nonfinite must be >= 0")
        if self.num_steps < 1:
            problems.append("num_steps must be >= 1")
        if problems:
            raise ValueError("bad training config: " + "; ".join(problems))


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(d: dict) -> TrainConfig:
    """Inverse of `to_dict` (config.json of a workdir)."""
    d = dict(d)
    data = dict(d.pop("data"))
    data["train"] = [DatasetConfig(**x) for x in data["train"]]
    data["dev"] = DatasetConfig(**data["dev"]) if data.get("dev") else None
    return TrainConfig(model=ModelConfig(**d.pop("model")), data=DataConfig(**data),
                       loss=LossConfig(**d.pop("loss")), optim=OptimConfig(**d.pop("optim")),
                       **{k: tuple(v) if k == "mesh" else v for k, v in d.items()})


def load_config_file(path: str | Path) -> TrainConfig:
    """A config file, or the name of one in train/configs/ ("tiny", "minilm"): an installed
    package has no checkout to point at."""
    path = Path(path)
    shipped = Path(__file__).resolve().parent / "configs" / f"{path}.py"
    if not path.is_file() and path.suffix == "" and path.name == str(path) and shipped.is_file():
        path = shipped
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"_train_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"{path} defines no get_config()")
    cfg = module.get_config()
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"{path}: get_config() returned {type(cfg).__name__}, not TrainConfig")
    return cfg


def _parse(text: str, current: Any) -> Any:
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(current, int | float) and text.lower() != "none":
        return type(current)(float(text) if isinstance(current, int) and "e" in text else text)
    if isinstance(current, str):
        return text
    if text.lower() == "none":
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string where the default is None
    return tuple(value) if isinstance(current, tuple) else value


def apply_override(cfg: TrainConfig, dotted: str, text: str) -> None:
    """Set `a.b.c` (list items by index, dict keys by name) from its command-line text."""
    *parents, last = dotted.split(".")
    node = cfg
    for name in parents:
        node = _child(node, name, dotted)
        if node is None:
            raise KeyError(f"--config.{dotted}: {name} is None (set the whole field)")
    current = _child(node, last, dotted)
    value = _parse(text, current)
    if dotted == "data.dev" and isinstance(value, str):  # --config.data.dev=FOLDER
        value = DatasetConfig(path=value, split="dev")
    if isinstance(node, list):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        setattr(node, last, value)


def _child(node: Any, name: str, dotted: str) -> Any:
    if isinstance(node, list):
        if not name.isdigit() or int(name) >= len(node):
            raise KeyError(f"--config.{dotted}: no list item {name}")
        return node[int(name)]
    if isinstance(node, dict):
        return node.get(name)
    if not dataclasses.is_dataclass(node) or name not in {f.name for f in dataclasses.fields(node)}:
        raise KeyError(f"--config.{dotted}: {type(node).__name__} has no field {name!r}")
    return getattr(node, name)


def dumps(cfg: TrainConfig) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)
