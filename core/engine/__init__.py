"""The search engine: the search space, its parts, the loop, discretization, genotypes, evaluation."""
