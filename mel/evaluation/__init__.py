"""Evaluation: R@k by frequency bin and language (paper Sec. 5.2.1, Table 6), datasets
(held-out split, Mewsli-9), the alias-table baseline, reports. Imports no training, mining or
negative-mining code.
"""
