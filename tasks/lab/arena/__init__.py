"""The arena: every residual design on one GPT, one text, one protocol (run.py), with its references and report."""
