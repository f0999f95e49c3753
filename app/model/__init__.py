"""The models: their features (`features.py`); the one-process training run (`training.py`)
and the sharded one (`sharded_training.py`); the promotion gate (`promotion.py`); publishing a
run's decisions, the training lock and rollback (`publication.py`); the scores of every student
under a published generation (`scoring.py`); the versioned artifact store and its pointer
(`artifacts.py`); the served models in memory, which model answers for which school
(`served_models.py`); and the model-quality report of a run (`report.py`)."""
