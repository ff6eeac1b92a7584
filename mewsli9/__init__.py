"""Mewsli-9 dataset tools (reader for the released files, extraction from WikiNews dumps)."""
