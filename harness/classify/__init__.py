"""The classifier side of CAS: models, training recipes, the train loop and evaluation."""
