"""MSFS-Net (multi-scale frequency separation network): its declaration (:mod:`.config`), the network
(:mod:`.net`) and its blocks (:mod:`.fsm`, :mod:`.csffm`, :mod:`.octconv`), the authors' weights
(:mod:`.public`)."""
