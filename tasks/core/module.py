"""What every task's LightningModule shares: its network is `self.net`, and its checkpoints say how to rebuild it."""

from __future__ import annotations

from typing import Any

from residual_kit.models.checkpoint import ENTRY, network_entry


class NetworkCheckpoint:
    """A LightningModule mixin: each checkpoint also keeps the version and the network's config (the
    `residual_kit` entry), which `create_model(name, checkpoint=...)` reads without Lightning."""

    net: Any

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[ENTRY] = network_entry(self.net)


__all__ = ["NetworkCheckpoint"]
