"""Linking: text -> linked mentions. The surface-form dictionary and spotter, the Linker behind
`mel.link` / `mel.load`, the gs:// model cache, and the `mel link` command. Imports no
training, mining or negative-mining code.
"""
