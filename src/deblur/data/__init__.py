"""Datasets, augmentation and the LightningDataModule (nothing here knows a model)."""
