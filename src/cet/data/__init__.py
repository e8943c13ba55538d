"""Training-data generation: degradations, code mutations, partial code."""
