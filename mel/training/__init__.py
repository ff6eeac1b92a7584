"""Training: records -> trained towers in a model dir.

configs (the experiment dataclasses), tokenization and input_layout (what the towers read),
inputs (tf.data from the mining records), optimization, train (the loop under tf.distribute),
export (SavedModels that take raw strings), vocabulary (WordPiece from mined text), bert_init
(mBERT checkpoints), rounds (round 0 + hard-negative rounds as one command).
"""
