"""Training recipes: YAML -> typed dataclasses, checked before any compute.

A recipe is global settings (model, optimiser, batch, run options) plus a list of stages. Each stage names its token
shards with mixture weights, its length (steps or tokens) and may override any `optim`/`batch` field and the RoPE
base/scaling (long-context stages). Every stage starts from the previous stage's weights with a fresh optimiser, as
CodeGen did (NL -> Multi -> Mono).

    model: {preset: tiny-10m, n_layer: 4}      # preset + ModelConfig field overrides
    data_root: runs/quickstart                 # optional base for relative data/tokenizer paths
    init_from: null                            # or an opencodegen / HuggingFace checkpoint directory
    tokenizer: tokenizer/tokenizer.json
    optim: {lr: 3e-4, lr_end: 3e-5, warmup_steps: 100, weight_decay: 0.1, grad_clip: 1.0, z_loss: 1e-4}
    batch: {batch_tokens: 8192, micro_batch: 4, context_length: 256}
    stages:
      - {name: nl, data: {tokens/nl: 1.0}, steps: 300}
      - {name: mono, data: {tokens/mono: 1.0}, tokens: 2_000_000, optim: {lr: 2e-4}, rope_base: 1e6}
      - {name: mine, data: tokens/mine, steps: 50}    # one directory (or a list) is weight 1.0 each

Any key may be overridden from the command line: `--optim.lr 3e-4`, `--stages.1.data tokens/mine`,
`--stages.1.steps 50` (steps replaces the stage's tokens and the other way round), and `--data tokens/mine` fills every
stage that the recipe leaves without data (configs/finetune.yaml).

`optim.name` is adamw (CodeGen's) or muon (Muon on the blocks' matrices, AdamW on the rest: train/muon.py).
Unknown keys, wrong types and impossible numbers raise UserError naming the key.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import UserError
from ..progress import log as note
from ..device import resolve_device
from .precision import AUTOCAST_CHOICES


Kind = Literal["pretrain", "sft", "dpo", "rl"]
KINDS = typing.get_args(Kind)


@dataclass
class OptimConfig:
    name: Literal["adamw", "muon"] = "adamw"  # Muon on the blocks' matrices, AdamW on the rest; see muon.py
    lr: float = 3e-4
    lr_end: float = 3e-5
    warmup_steps: int = 100
    schedule: Literal["cosine", "wsd"] = "cosine"  # after warmup: a cosine to lr_end, or warmup-stable-decay (optim.py)
    decay_fraction: float = 0.2  # wsd: the last fraction of the steps after warmup, decayed linearly to lr_end
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    z_loss: float = 0.0  # CodeGen: 1e-4 * logZ^2 added to the cross-entropy


@dataclass
class BatchConfig:
    batch_tokens: int = 8192  # global tokens per optimiser step (all ranks, all accumulation steps)
    micro_batch: int = 4  # sequences per forward pass per rank
    context_length: int = 256


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "auto"  # auto: CUDA when this torch sees a GPU, else the CPU; a device it cannot use is refused
    autocast: Literal[AUTOCAST_CHOICES] = "auto"  # "auto": bf16 where the hardware has it (precision.py)
    parallel: Literal["ddp", "fsdp"] = "ddp"  # with several processes: DDP, or FSDP2 (fully_shard per block)
    compile: bool = False
    activation_checkpointing: bool = False
    doc_mask: bool = False  # attention stays inside each document (boundaries from the shard index)
    eval_every: int = 100
    eval_tokens: int = 65536  # held-out tokens per validation (a fixed prefix of the valid split)
    save_every: int = 100
    keep_last: int = 2
    # The stage's output (what the next stage starts from, and a run's final checkpoint): the uniform mean of the
    # weights of its last `average_last` checkpoints (train/stage_output.py); 1: its last checkpoint as it is.
    average_last: int = 1
    # Wall seconds after which the stage ends at the step it reached, saving a checkpoint there (None: no limit). The
    # quickstart's schedule gives a pretraining stage its share of the budget this way, so a machine that slows down
    # inside a long stage costs that stage steps rather than the post-training after it.
    max_seconds: float | None = None


@dataclass
class SFTOptions:
    completion_only: bool = True  # loss on the completion's tokens only (the prompt's are context, not targets)
    # completion: prompt then completion, as a plain completion request reads them; chat: the prompt as a user turn
    # and the code as the assistant's answer in the chat template (prompt_format.chat_pieces), ending <|im_end|>
    format: Literal["completion", "chat"] = "completion"
    valid_fraction: float = 0.02  # examples held out (by id, deterministically) for the validation loss
    # Each example also becomes, with this probability, a fill-in-the-middle row: a span of its completion masked, in
    # PSM order, the loss on the middle and EOS (sft.completion_cut). SFT rows alone teach that an answer follows the
    # prompt and ends, and the model loses the infilling it pretrained on (Qwen2.5-Coder and CodeGemma keep FIM in
    # their SFT mixtures). Completion format only.
    fim_rate: float = 0.0


@dataclass
class SamplingOptions:
    """How rl and dpo stages sample completions to judge: a group per exercise, each run against its tests."""

    exercises_per_step: int = 8  # across all processes
    group_size: int = 8  # completions sampled per exercise
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 128
    timeout: float = 3.0  # seconds per judged program


@dataclass
class RLOptions(SamplingOptions):
    mode: Literal["grpo", "expert_iteration"] = "grpo"  # expert_iteration: SFT on the passing samples
    kl: float = 0.0  # weight of the KL penalty to the frozen reference (the stage's starting weights)
    scale_rewards: bool = True  # divide advantages by the group's std (GRPO); False: mean-centred only (Dr. GRPO)
    # fraction: the share of the exercise's asserts that held (every assert runs); pass: 1 if all held, else 0
    reward: Literal["fraction", "pass"] = "fraction"
    # uniform: every exercise alike; learnability: families drawn by p(1 - p) of their running pass rates
    # (train/curriculum.py), so that the step's groups are the ones whose rewards differ
    curriculum: Literal["uniform", "learnability"] = "uniform"


@dataclass
class DPOOptions(SamplingOptions):
    beta: float = 0.1  # Rafailov et al.'s temperature on the log-ratio margin


@dataclass
class StageConfig:
    name: str
    # pretrain: token directory (holding train/ and valid/) -> mixture weight; sft/dpo/rl: JSONL file or directory of
    # them (exercises, prompt/completion pairs, or prompt/chosen/rejected pairs) -> mixture weight
    data: dict[str, float] = field(default_factory=dict)  # empty: given on the command line (--data)
    kind: Kind = "pretrain"
    steps: int | None = None
    tokens: int | None = None
    optim: dict[str, Any] = field(default_factory=dict)  # overrides of the recipe's optim
    batch: dict[str, Any] = field(default_factory=dict)  # overrides of the recipe's batch
    # overrides of the recipe's run, for the keys that can differ by stage (STAGE_RUN_KEYS): a post-training stage
    # may keep all of its checkpoints while pretraining keeps the last two
    run: dict[str, Any] = field(default_factory=dict)
    rope_base: float | None = None
    rope_scaling: dict[str, Any] | None = None
    sft: SFTOptions = field(default_factory=SFTOptions)
    dpo: DPOOptions = field(default_factory=DPOOptions)
    rl: RLOptions = field(default_factory=RLOptions)


@dataclass
class Recipe:
    stages: list[StageConfig]
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "tiny-1m"})
    init_from: str | None = None
    tokenizer: str | None = None
    data_root: str | None = None  # relative stage data paths and the tokenizer path are under this directory
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def stage_optim(self, i: int) -> OptimConfig:
        return _build(OptimConfig, {**dataclasses.asdict(self.optim), **self.stages[i].optim}, f"stages[{i}].optim")

    def stage_batch(self, i: int) -> BatchConfig:
        return _build(BatchConfig, {**dataclasses.asdict(self.batch), **self.stages[i].batch}, f"stages[{i}].batch")

    def stage_run(self, i: int) -> RunConfig:
        extra = sorted(set(self.stages[i].run) - set(STAGE_RUN_KEYS))
        if extra:
            raise UserError(f"stages[{i}].run: {extra} cannot differ by stage; a stage may set {list(STAGE_RUN_KEYS)}")
        return _build(RunConfig, {**dataclasses.asdict(self.run), **self.stages[i].run}, f"stages[{i}].run")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Run keys a stage may override: when it validates and saves. The rest (device, precision, parallelism, seed) is one
# for the whole run.
STAGE_RUN_KEYS = ("eval_every", "eval_tokens", "save_every", "keep_last", "average_last", "max_seconds")


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin is Literal:
        if value in typing.get_args(hint):
            return value
        raise UserError(f"{where}={value!r} is not one of {', '.join(map(str, typing.get_args(hint)))}")
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_type(value, option, where)
            except UserError:
                pass
        raise UserError(f"{where}: expected {_name(hint)}, got {value!r}")
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        _, vt = typing.get_args(hint)
        return {str(k): _check_type(v, vt, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {value!r}")
        (et,) = typing.get_args(hint)
        return [_check_type(v, et, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise UserError(f"{where}: expected {_name(hint)}, got {value!r}")


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _build(cls, data: Any, where: str):
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _check_type(data[name], hints[name], f"{where}.{name}" if where else name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise UserError(f"{where}: missing required key {name!r}")
    return cls(**kwargs)


# Stage keys the command line may set per stage (`--stages.N.KEY`); N counts from 0 and goes up to MAX_STAGES - 1.
STAGE_OVERRIDE_KEYS = ("data", "steps", "tokens", "kind", "rope_base", "sft.format", "sft.fim_rate")
MAX_STAGES = 16


def override_keys() -> list[str]:
    """Dotted keys the command line may override (`--optim.lr 3e-4`), with the help line for each."""
    return list(override_help())


def override_help() -> dict[str, str]:
    """Every overridable key -> its help text (the field's type and the recipe default it replaces)."""
    out = {"init_from": "start from this checkpoint (opencodegen or HuggingFace directory); the model is its model",
           "tokenizer": "tokenizer.json the data was encoded with (default: the one beside init_from's weights)",
           "data_root": "directory that relative data and tokenizer paths are under",
           "data": "token directory (or JSONL for sft/dpo/rl) for every stage the recipe leaves without data"}
    for section, cls in (("optim", OptimConfig), ("batch", BatchConfig), ("run", RunConfig)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            out[f"{section}.{f.name}"] = f"{_name(hints[f.name])}, recipe default {f.default!r}"
    return out


def stage_override_keys() -> list[str]:
    return [f"stages.{i}.{k}" for i in range(MAX_STAGES) for k in STAGE_OVERRIDE_KEYS]


def apply_overrides(data: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """`{"optim.lr": "3e-4"}` -> data["optim"]["lr"] = 3e-4 (values parsed as YAML scalars); `stages.N.` indexes the
    stage list; `data` fills every stage without data."""
    data = copy.deepcopy(data)
    for key, raw in overrides.items():
        value = yaml.safe_load(raw) if isinstance(raw, str) else raw
        if key == "data":
            empty = [s for s in data.get("stages") or [] if isinstance(s, dict) and not s.get("data")]
            if not empty:
                raise UserError("--data fills the stages a recipe leaves without data, and every stage of this one "
                                "names its data; use --stages.N.data PATH for stage N (from 0)")
            for s in empty:
                s["data"] = value
            continue
        parts = key.split(".")
        node: Any = data
        for p in parts[:-1]:
            if isinstance(node, list):
                if not p.isdigit() or int(p) >= len(node):
                    raise UserError(f"override {key}: the recipe has {len(node)} stage(s) (0 to {len(node) - 1})")
                node = node[int(p)]
            elif isinstance(node, dict):
                node = node.setdefault(p, {})
            if not isinstance(node, (dict, list)):
                raise UserError(f"override {key}: {p!r} is not a section")
        if isinstance(node, list):
            raise UserError(f"override {key}: name a key inside the stage (--stages.N.data, --stages.N.steps, ...)")
        node[parts[-1]] = value
        if parts[0] == "stages" and parts[-1] in ("steps", "tokens"):
            node.pop("tokens" if parts[-1] == "steps" else "steps", None)  # the stage's length is one or the other
    return data


def load_recipe(path: str | Path, overrides: dict[str, str] | None = None) -> Recipe:
    """Reads and checks a YAML recipe; `overrides` maps dotted keys to YAML scalars. Paths in a recipe are relative
    to the working directory (recipes in configs/ name the project's tokens/ and tokenizer/)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: recipe file does not exist") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping with a 'stages' list")
    return recipe_from_dict(apply_overrides(data, overrides or {}), where=str(path))


def recipe_from_dict(data: dict[str, Any], where: str = "recipe") -> Recipe:
    data = {**data, "stages": [_stage_data_as_mapping(s) for s in data.get("stages") or []]} if "stages" in data \
        else data
    try:
        recipe = _build(Recipe, data, "")
        recipe.run.device = resolve_device(recipe.run.device)
    except UserError as e:
        raise UserError(f"{where}: {e}".replace(": : ", ": ")) from None
    if recipe.init_from and "model" in data:
        note(f"{where}: model {data['model']} is not used: the model is init_from's ({recipe.init_from})")
    if recipe.data_root:
        root = Path(recipe.data_root)
        for s in recipe.stages:
            s.data = {str(root / k): w for k, w in s.data.items()}  # absolute keys stay as they are
        if recipe.tokenizer:
            recipe.tokenizer = str(root / recipe.tokenizer)
    check_recipe(recipe, where)
    return recipe


def _stage_data_as_mapping(stage: Any) -> Any:
    """A stage's `data` may be one path or a list of paths (weight 1.0 each) as well as a path -> weight mapping."""
    if not isinstance(stage, dict):
        return stage
    d = stage.get("data")
    if isinstance(d, str):
        return {**stage, "data": {d: 1.0}}
    if isinstance(d, list) and all(isinstance(p, str) for p in d):
        return {**stage, "data": {p: 1.0 for p in d}}
    if d is None and "data" in stage:
        return {k: v for k, v in stage.items() if k != "data"}
    return stage


def check_recipe(recipe: Recipe, where: str) -> None:
    """Numbers that cannot work, caught before anything is built."""
    problems = []
    if not recipe.stages:
        problems.append("no stages")
    names = [s.name for s in recipe.stages]
    if len(set(names)) != len(names):
        problems.append(f"stage names repeat: {names}")
    if not recipe.init_from and "preset" not in recipe.model and "n_layer" not in recipe.model:
        problems.append("model: give a preset (model.preset) or a full set of ModelConfig fields")
    for i, s in enumerate(recipe.stages):
        if (s.steps is None) == (s.tokens is None):
            problems.append(f"stages[{i}] ({s.name}): give exactly one of steps or tokens")
        elif s.kind in ("dpo", "rl") and s.steps is None:
            problems.append(f"stages[{i}] ({s.name}): a {s.kind} stage is measured in steps, not tokens")
        problems += _sampling_problems(s, i)
        if not s.data:
            problems.append(f"stages[{i}] ({s.name}): no data; give it with --data PATH (every stage without data) "
                            f"or --stages.{i}.data PATH")
        if any(w <= 0 for w in s.data.values()):
            problems.append(f"stages[{i}] ({s.name}): mixture weights must be positive")
        try:
            o, b, r = recipe.stage_optim(i), recipe.stage_batch(i), recipe.stage_run(i)
        except UserError as e:
            problems.append(str(e))
            continue
        if r.eval_every <= 0 or r.save_every <= 0 or r.keep_last < 1:
            problems.append(f"stages[{i}] ({s.name}): run.eval_every/save_every must be > 0 and keep_last >= 1")
        if not 1 <= r.average_last <= r.keep_last:
            problems.append(f"stages[{i}] ({s.name}): run.average_last ({r.average_last}) must be between 1 and "
                            f"keep_last ({r.keep_last}): only kept checkpoints can be averaged")
        if o.name == "muon" and recipe.run.parallel == "fsdp":
            # FSDP2 shards each matrix across ranks; orthogonalizing a shard is not orthogonalizing the matrix.
            problems.append(f"stages[{i}] ({s.name}): optim.name 'muon' needs whole matrices on each rank; "
                            "use run.parallel ddp")
        if o.lr <= 0 or o.lr_end < 0 or o.warmup_steps < 0:
            problems.append(f"stages[{i}] ({s.name}): lr must be > 0, lr_end >= 0, warmup_steps >= 0")
        if not 0 < o.decay_fraction <= 1:
            problems.append(f"stages[{i}] ({s.name}): optim.decay_fraction must be in (0, 1]")
        if min(b.batch_tokens, b.micro_batch, b.context_length) <= 0:
            problems.append(f"stages[{i}] ({s.name}): batch sizes must be positive")
    if problems:
        raise UserError(f"{where}: " + "; ".join(problems))


def _sampling_problems(s: StageConfig, i: int) -> list[str]:
    where = f"stages[{i}] ({s.name})"
    problems = []
    if not 0 < s.sft.valid_fraction < 1:
        problems.append(f"{where}: sft.valid_fraction must be in (0, 1)")
    if not 0 <= s.sft.fim_rate <= 1:
        problems.append(f"{where}: sft.fim_rate must be in [0, 1]")
    elif s.sft.fim_rate > 0 and s.sft.format == "chat":
        problems.append(f"{where}: sft.fim_rate applies to the completion format, not chat")
    for key, o in (("dpo", s.dpo), ("rl", s.rl)):
        if min(o.exercises_per_step, o.group_size, o.max_new_tokens) < 1:
            problems.append(f"{where}: {key}.exercises_per_step, group_size and max_new_tokens must be >= 1")
        if o.temperature <= 0 or not 0 < o.top_p <= 1 or o.timeout <= 0:
            problems.append(f"{where}: {key}.temperature and timeout must be > 0 and top_p in (0, 1] (sampling "
                            "must explore)")
    if s.kind == "rl" and s.rl.mode == "grpo" and s.rl.group_size < 2:
        problems.append(f"{where}: rl.group_size must be >= 2 for group-relative advantages")
    if s.rl.kl < 0 or s.dpo.beta <= 0:
        problems.append(f"{where}: rl.kl must be >= 0 and dpo.beta > 0")
    return problems


def accumulation_steps(batch: BatchConfig, world_size: int, stage: str) -> int:
    """batch_tokens = micro_batch * context_length * world_size * accumulation, exactly."""
    per_pass = batch.micro_batch * batch.context_length * world_size
    if batch.batch_tokens % per_pass:
        raise UserError(f"stage {stage}: batch_tokens={batch.batch_tokens} is not a multiple of micro_batch "
                        f"({batch.micro_batch}) x context_length ({batch.context_length}) x processes ({world_size}) "
                        f"= {per_pass}")
    return batch.batch_tokens // per_pass
