"""SD1.x networks in plain PyTorch, with LDM (CompVis) module names so checkpoints load by their own keys."""
