"""Apache Beam jobs that turn WikiData and Wikipedia dumps into mel's training records.

The modules without `beam` in their imports (dump_reader, wikitext, titles, sentences, wikidata,
descriptions, splits) are pure functions over one page or entity; the PTransforms that wire them
live in `transforms`, and `extract_mentions` builds the pipeline.
"""
