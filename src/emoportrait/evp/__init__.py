"""EVP's learned pipeline: dataset preparation, networks, training stages."""
