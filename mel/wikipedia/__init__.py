"""Reading Wikipedia dumps, one page at a time, with no Beam: the dump reader (also from any
bz2 stream of a multistream dump, through its index), title normalisation, the wikitext walk
that keeps link offsets, sentence ends, redirect following.

Shared by the mining pipeline (beam_pipelines) and the Mewsli-9 extractor (mewsli9).
"""
