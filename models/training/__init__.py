"""Training code. Inference code (models.base, models.package, model kinds) never imports this."""
