"""Training losses. Each returns ``(total, {part_name: value})`` so the LightningModule can log the parts."""
