"""NAFNet: its declaration (:mod:`.config`), the network (:mod:`.net`) and the authors' weights format
(:mod:`.weights`)."""
