"""Lightning wrappers: the one LightningModule (:mod:`restoration`) and callbacks (:mod:`callbacks`)."""
