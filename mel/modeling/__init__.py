"""The dual encoder: towers, the Model E embedding table, the in-batch softmax loss.

Layers and networks in the tf-models-official style: one network per file, get_config() on
every Keras object, shapes in docstrings.
"""
