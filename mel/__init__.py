"""mel: multilingual entity linking to WikiData (Botha et al. 2020, "Entity Linking in 100 Languages").

Importing `mel` is cheap: TensorFlow and Beam are imported only by the modules that need them.
`mel.link` and `mel.load` import the serving code (mel.linking.linker) on first call.

    import mel
    mentions = mel.link("Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.", "el")   # $MEL_MODEL_DIR
    linker = mel.load("out/models/demo_f/round1")                          # or gs://...
"""
import os

__version__ = "0.1.0"

# tf-models-official is built on Keras 2 (tf_keras); TensorFlow 2.20's tf.keras is Keras 3. The
# variable must be set before TensorFlow is first imported, and every mel module is imported
# after this package, so this is the one place that sets it.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def link(text, lang, **kwargs):
  """Linked mentions of text in language lang: see mel.linking.linker.link (model from $MEL_MODEL_DIR
  or model_dir=...). lang: any well-formed language code (en, zh-yue, gsw, pt-br); one outside
  the model's pretraining languages gives an UnseenLanguageWarning, once per code."""
  from mel.linking import linker
  return linker.link(text, lang, **kwargs)


def load(path=None, **kwargs):
  """A Linker for a model directory (local or gs://): see mel.linking.linker.load."""
  from mel.linking import linker
  return linker.load(path, **kwargs)
