"""mel: multilingual entity linking to WikiData (Botha et al. 2020, "Entity Linking in 100 Languages").

Importing `mel` is cheap: TensorFlow and Beam are imported only by the modules that need them.
"""
__version__ = "0.1.0"
