"""Retrieval: exported towers -> entity embeddings -> a nearest-entity index -> hard negatives.

    embeddings     entity vectors on disk (shards + manifest)
    encode         `mel encode`: the entity tower over a model dir's entity table
    ids            the entity ids of an index's rows (compact, read-only)
    index          the Index interface, its on-disk form, load_index
    brute_force    exact search (numpy)
    scann          ScaNN indexes and their parameters
    scann_memory   what saving a ScaNN shard costs in memory; the warning before a build
    sharded        shards searched as one index
    build          streamed and sharded builds, from embeddings or any re-readable source
    build_index    `mel index`: an index over a model's embeddings
    negatives      `mel negatives`: hard-negative mining for the next training round

The index API is re-exported here (`from mel import retrieval; retrieval.load_index(path)`).
Importing mel.retrieval does not import TensorFlow (nor ScaNN until an index is built or
loaded).
"""
from mel.retrieval.brute_force import BruteForceIndex  # noqa: F401
from mel.retrieval.build import (build_index_from_embeddings, build_sharded,  # noqa: F401
                                 build_streaming, default_shard_size, index_is_current,
                                 rechunk)
from mel.retrieval.ids import IdList  # noqa: F401
from mel.retrieval.index import (Index, IndexLoadError, index_bytes, load_index,  # noqa: F401
                                 read_manifest, select_top_k)
from mel.retrieval.scann import ScannIndex, scann_params_for  # noqa: F401
from mel.retrieval.scann_memory import (SCANN_SAVE_BYTES_PER_LEAF_CENTRE,  # noqa: F401
                                        scann_save_overhead_bytes, scann_save_peak_bytes)
from mel.retrieval.sharded import ShardedIndex  # noqa: F401
