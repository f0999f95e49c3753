"""The image's command line, `python -m app <command>`: `main.py` parses the arguments of the
sixteen commands and runs the one named through its table, `COMMANDS`; each command is one
small function, grouped by what it works on (`serving.py`, `training.py`, `data.py`, `keys.py`);
`sagemaker.py` applies SageMaker's container contract to the settings, and `exit_codes.py`
names the exit codes the workloads' manifests and alarms rely on."""
