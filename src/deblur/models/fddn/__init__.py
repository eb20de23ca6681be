"""FDDN (frequency disentanglement distillation network): its declaration (:mod:`.config`), the network
(:mod:`.net`) and its blocks (:mod:`.fsb`, :mod:`.fdb`, :mod:`.distillation`, :mod:`.inception`)."""
