"""`python -m mel.train`: trains one model dir (the command TPU scripts and users run).

The training stage lives in mel.training (mel.training.train holds the loop); `mel train` is
the same command.
"""
import sys

from mel.training.train import main

if __name__ == "__main__":
  sys.exit(main(prog="python -m mel.train"))
