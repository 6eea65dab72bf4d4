"""The tuners: one package per method of the survey, each a config, a layer and a model."""
