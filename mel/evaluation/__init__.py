"""Evaluation (paper Sec. 5.2.1, Table 6): R@k by frequency bin and language.

    metrics      gold ranks, R@k, one system's figures (micro, macro, per bin, per language)
    nil          removed entities, the calibration half, the NIL threshold and its figures
    datasets     queries of the held-out split or a Mewsli-9 directory; the training counts
    systems      the dual encoders (mention tower + index), a dual encoder reranked by a
                 cross-attention reranker ("+CA") and the alias-table baseline
    alias_table  the baseline's table (mel.anchors counts) and its file; `mel alias-table`
    report       evaluation.json, evaluation.md and the plots (nil_curve.png with NIL)
    evaluate     the run: evaluate(), `mel evaluate`

Imports no training, mining, Beam or negative-mining code: a model is read through its export
(mel.model_dir, mel.towers) and its index (mel.retrieval).
"""
