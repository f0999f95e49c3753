"""The jobs the CLI runs besides serving and training: the district import (`importer/`), the
audit-log archive (`archive.py`), events and their rescoring worker (`events/`), moving a
district to another region (`district_move.py`), rolling the SageMaker endpoint to the served
models (`sagemaker_rollout.py`) and the synthetic district (`generate.py`)."""
