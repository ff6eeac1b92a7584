"""Linking: text -> linked mentions. Imports no training, mining or negative-mining code.

    units          what a form may start and end on, in any script; the prefix walk
    dictionary     the surface-form dictionary: stats per form, P(entity | text), build, disk
    spotter        mentions found in text (dictionary forms, longest first)
    inputs         checks of languages, spans and top_k
    entities       the entity table by index row
    results        Candidate, LinkedMention
    loading        a model directory's serving parts (local, or gs:// via model_cache); a reranker
    linker         the Linker, mel.link and mel.load; full mode reranked by a reranker (+CA)
    cli            `mel link`;  build_dictionary: `mel dictionary`
"""
