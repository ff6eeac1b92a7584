"""Retrieval: exported towers -> entity embeddings -> a nearest-entity index -> hard negatives.

embeddings (vectors on disk), encode (the entity tower over the entity table), the index
modules (one interface; exact and ScaNN implementations; shards; streaming builds) and
negatives (hard-negative mining for the next training round).
"""
from mel.retrieval.index import (BruteForceIndex, IdList, Index, IndexLoadError, ScannIndex,  # noqa: F401
                                 ShardedIndex, build_index_from_embeddings, build_sharded,
                                 build_streaming, index_bytes, load_index, read_manifest,
                                 scann_params_for)
