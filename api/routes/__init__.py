"""One module per resource; each defines `router`. Routes parse, call the engine or the store,
and shape the answer — nothing else."""
