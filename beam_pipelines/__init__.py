"""Apache Beam jobs: WikiData and Wikipedia dumps -> mel's training records (extract_mentions),
and a model's entities -> embeddings at scale (encode_entities).

Per-page parsing with no Beam in it (dump reading, titles, wikitext, sentences, redirects) lives
in mel.wikipedia, which the Mewsli-9 extractor shares; the pure per-entity functions of mining
(wikidata, descriptions, splits) are here; the dumps are read (whole, or in byte ranges by
many workers) in `read_dumps`, the PTransforms that wire the rest are in `transforms`, and
`extract_mentions` builds the pipeline.
"""
