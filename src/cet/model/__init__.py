"""The CET: base model + LoRA adapters, the engineered-context schema, generation, save and load."""
