"""EVP's learned pipeline: dataset preparation, features cache, datasets, networks and losses
(its training stages are :mod:`emoportrait.training.evp`)."""
