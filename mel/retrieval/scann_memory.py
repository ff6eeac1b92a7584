"""What filling and saving a ScaNN tree-AH shard costs in memory, and the warning before a build
whose save will not fit.

Saving, not training or filling, is where a large build peaks: ScaNN copies its AH codebook
once per leaf while it serialises, so the peak grows with the tree's leaves more than with the
shard's rows, and smaller shards of the same tree do not shrink it. build_streaming prints the
estimate before training (which can take an hour) and warns when it exceeds MemAvailable.
bench/scann_shard_memory.py measures the peak; bench/RESULTS.md has the figures.
"""
import math
import sys
import warnings
from typing import Optional

from mel.retrieval.scann import scann_params_for

# ScaNN 1.4.2 serialises a tree-AH searcher by asking every leaf for its factory options, and
# each leaf answers with its own protobuf copy of the AH codebook (16 centres per block), all
# held at once: ~270 bytes per centre per leaf, whatever the leaf holds. Measured with
# bench/scann_shard_memory.py (2,000 leaves, 300-d): 0.63 MB per leaf at 2 dims per block
# (150 blocks), 0.28 MB at 4, 1.38 MB at 1; 20M's 17,889 leaves at 2 dims: ~11 GB.
SCANN_SAVE_BYTES_PER_LEAF_CENTRE = 270
AH_CENTRES = 16   # per block: ScaNN's 4-bit codes


def ah_blocks(params: dict, dimension: int) -> int:
  """AH subspaces (blocks) a tree-AH index codes each vector into."""
  return math.ceil(dimension / params["dims_per_block"])


def scann_save_overhead_bytes(params: dict, dimension: int) -> int:
  """Memory ScaNN's save of one tree-AH index (or shard) takes beyond the index itself.

  num_leaves x AH blocks x 16 centres x SCANN_SAVE_BYTES_PER_LEAF_CENTRE: the per-leaf
  codebook copies, the same for every shard of a shared tree. 0 for ScaNN brute force.
  """
  if params.get("algorithm") != "tree_ah":
    return 0
  return (int(params["num_leaves"]) * ah_blocks(params, dimension) * AH_CENTRES *
          SCANN_SAVE_BYTES_PER_LEAF_CENTRE)


def scann_save_peak_bytes(params: dict, dimension: int, rows: int) -> int:
  """A lower bound on the memory a process needs to fill and save a tree-AH ScaNN shard.

  The shard (int8 vectors, unpacked AH codes and ScaNN's copies of both while it writes them:
  ~2 x dimension + blocks bytes per row) plus scann_save_overhead_bytes. Measured peaks are
  higher (the trained tree, Python's ids, allocator slack): bench/RESULTS.md.
  """
  return (rows * (2 * dimension + ah_blocks(params, dimension)) +
          scann_save_overhead_bytes(params, dimension))


def available_memory() -> Optional[int]:
  """MemAvailable in bytes (Linux), or None where /proc/meminfo does not say."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def warn_if_save_will_not_fit(params: Optional[dict], dimension: int, shard_rows: int,
                              total: int, bar=None) -> None:
  """Says what saving a shard of shard_rows will need (on bar, a tqdm, if given) and warns
  when that exceeds the memory available: before training, which can take an hour."""
  # one shard or several sharing a tree: the leaves come from all rows (train_shared)
  full = {**scann_params_for(total, total), **(params or {})}
  if full["algorithm"] != "tree_ah":
    return
  need = scann_save_peak_bytes(full, dimension, shard_rows)
  available = available_memory()
  summary = (f"ScaNN: {full['num_leaves']:,} leaves, "
             f"{ah_blocks(full, dimension)} AH blocks; saving a shard "
             f"of {shard_rows:,} rows needs at least {need / 1e9:.1f} GB "
             f"({scann_save_overhead_bytes(full, dimension) / 1e9:.1f} GB of it ScaNN's "
             f"per-leaf codebook copies)")
  if bar is not None:
    bar.write(summary + (f"; {available / 1e9:.1f} GB available" if available else ""),
              file=sys.stderr)
  if available is not None and need > available:
    warnings.warn(f"{summary}, but only {available / 1e9:.1f} GB is available: the build "
                  "will probably run out of memory when it saves. Use fewer leaves or more "
                  "dims per block (params num_leaves / dims_per_block), or smaller shards "
                  "(shard_size; the codebook copies do not shrink with it).", RuntimeWarning,
                  stacklevel=3)
