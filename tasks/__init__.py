"""Lightning tasks built from residual_kit: `python -m tasks.<name> fit|validate|test|predict`."""
