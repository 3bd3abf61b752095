"""The Lightning machinery every task shares: the CLI, callbacks, checkpoints, outputs and the gradient-flow monitor."""
