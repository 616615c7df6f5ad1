"""The experiment layer: the config (schema, loading, rules, checks), the runner with its Tune
and Ray setup, the journal and resume, schedulers and PBT, progress, locks, storage, trackers,
warm starts and retraining.

It builds on the space DSL, the strategies and the registries; the results layer
(:mod:`raynas.results`) reads what it writes. This package's ``__init__`` imports nothing, so
that ``raynas.experiment.config`` stays light for the trainables.
"""
