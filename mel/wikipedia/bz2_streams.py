"""Multi-stream bzip2 files, read from any stream start: the unit of a split dump read.

Wikimedia's `-multistream.xml.bz2` dumps and WikiData's JSON dumps are many bzip2 streams
written one after another. A stream can be decompressed on its own from its first byte, so a
reader given a byte range [start, stop) reads the streams that start inside it: that is how
many workers share one file (beam_pipelines/read_dumps.py). Stream starts come from an index
(Wikipedia) or from a scan for the stream header (WikiData); a scan hit counts only once its
first block has decompressed, and a block carries a CRC, so compressed bytes that happen to
look like a header are skipped.

Lines (WikiData) may cross stream boundaries. A line belongs to the stream that holds the
newline before it (the file's first line to the first stream): a range emits the lines after
each newline of the streams it owns, reading on into the next streams to finish its last
line, and skips the text before the first newline of its first stream unless that stream is
the file's first. Any set of ranges that covers the file thus emits every line exactly once.
"""
import bz2
import dataclasses
import re
from typing import BinaryIO, Callable, Iterator, Optional, Tuple

CHUNK_BYTES = 256 << 10

# "BZh" + block size, then the first block's magic (pi) or, for an empty stream, the end magic
# (sqrt pi). Stream starts are byte-aligned; blocks inside a stream are not.
_STREAM_HEADER = re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)")
_HEADER_BYTES = 10


class Bz2StreamError(Exception):
  """A stream cannot be decompressed at the offset given (corrupt data, or not a start)."""


@dataclasses.dataclass(frozen=True)
class Stream:
  """One bzip2 stream of a file: where it starts and ends (the next one's offset), what it
  decompresses to, and whether it ended properly (False: cut short by the end of the file)."""
  offset: int
  data: bytes
  end: int
  complete: bool = True


def is_bz2(head: bytes) -> bool:
  return head.startswith(b"BZh")


def iter_streams(f: BinaryIO, offset: int,
                 wanted: Optional[Callable[[int], bool]] = None) -> Iterator[Stream]:
  """The streams of f from the one at `offset` on, each decompressed whole.

  Consecutive streams are found exactly (each starts where the last one ended), so only the
  first offset has to be a true stream start. A stream cut off by the end of the file comes
  last, with complete=False and the data of its complete blocks. wanted(offset), if given,
  is asked before each stream is decompressed; iteration stops at the first it refuses.
  """
  f.seek(offset)
  pending = b""  # bytes read past the end of the previous stream
  while True:
    data = pending or f.read(CHUNK_BYTES)
    if not data or (wanted is not None and not wanted(offset)):
      return
    decompressor = bz2.BZ2Decompressor()
    parts = []
    consumed = 0
    while True:
      try:
        parts.append(decompressor.decompress(data))
      except OSError as e:
        raise Bz2StreamError(f"bz2 data at byte {offset + consumed} cannot be "
                             f"decompressed: {e}") from None
      if decompressor.eof:
        pending = decompressor.unused_data
        consumed += len(data) - len(pending)
        break
      consumed += len(data)
      data = f.read(CHUNK_BYTES)
      if not data:
        yield Stream(offset, b"".join(parts), offset + consumed, complete=False)
        return
    yield Stream(offset, b"".join(parts), offset + consumed)
    offset += consumed


def read_stream(f: BinaryIO, offset: int) -> Stream:
  """The one stream that starts at `offset`."""
  for stream in iter_streams(f, offset):
    return stream
  raise Bz2StreamError(f"no bz2 data at byte {offset} (past the end of the file)")


def _first_block_decompresses(f: BinaryIO, offset: int) -> bool:
  f.seek(offset)
  decompressor = bz2.BZ2Decompressor()
  while True:
    data = f.read(CHUNK_BYTES)
    if not data:
      return False
    try:
      if decompressor.decompress(data) or decompressor.eof:
        return True
    except OSError:
      return False


def find_stream_start(f: BinaryIO, position: int, limit: Optional[int] = None
                      ) -> Optional[int]:
  """The first offset in [position, limit) where a bzip2 stream starts; None if none does.

  limit keeps a range of a one-stream file (plain bzip2) from scanning the rest of the file.
  """
  carry = b""
  base = position
  f.seek(position)
  while True:
    if limit is not None and base >= limit:
      return None
    data = f.read(CHUNK_BYTES)
    if not data:
      return None
    window = carry + data
    start = 0
    while True:
      match = _STREAM_HEADER.search(window, start)
      if match is None:
        break
      candidate = base + match.start()
      if limit is not None and candidate >= limit:
        return None
      if _first_block_decompresses(f, candidate):
        return candidate
      start = match.start() + 1
    # Keep a header's worth of bytes: one may straddle two reads.
    keep = min(len(window), _HEADER_BYTES - 1)
    base += len(window) - keep
    carry = window[len(window) - keep:]
    f.seek(base + keep)


LineLabel = Tuple[int, int]  # (offset of the stream holding the newline before it, index)


def owned_lines(streams: Iterator[Stream], claim: Callable[[int], bool],
                at_file_start: bool) -> Iterator[Tuple[LineLabel, bytes, bool]]:
  """The lines a range owns (see the module docstring), with their labels.

  streams: from the range's first stream on; claim(offset) says whether the range owns the
  stream starting there (the Beam reader passes its restriction tracker's try_claim).
  at_file_start: the first stream is the file's first. Yields (label, line, complete): a
  label names a line the same way whichever range reads it, (offset of the stream that holds
  the newline before the line, how many lines follow earlier newlines of that stream).
  complete is False for the last item of a range that owns a stream cut off by the end of the
  file: the start of the line it cuts (possibly empty).
  """
  seeking = not at_file_start
  parts = []
  label = None  # the label of the line being read
  first = True
  for stream in streams:
    owned = claim(stream.offset)
    if not owned and seeking:
      return
    data = stream.data
    pos = 0
    next_index = 0
    if first and at_file_start:
      label = (stream.offset, 0)
      next_index = 1
    first = False
    if seeking:
      newline = data.find(b"\n")
      if newline < 0:
        if not stream.complete:
          yield (stream.offset, 0), b"", False  # the file ends in this owned stream
          return
        continue
      pos = newline + 1
      seeking = False
      label = (stream.offset, 0)
      next_index = 1
    while pos < len(data):
      newline = data.find(b"\n", pos)
      if newline < 0:
        parts.append(data[pos:])
        break
      parts.append(data[pos:newline + 1])
      yield label, b"".join(parts), True
      parts = []
      pos = newline + 1
      if not owned:
        return  # the line that ran into a stream of the next range is finished
      label = (stream.offset, next_index)
      next_index += 1
    if not stream.complete:
      # The file ends inside this stream: its owner says so, once, with the cut line's start.
      if owned:
        yield label or (stream.offset, 0), b"".join(parts), False
      return
  if parts:
    yield label, b"".join(parts), True  # the file's last line, with no newline after it
