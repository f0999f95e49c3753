"""Events and their worker: POST /v1/events writes the facts and queues the students
(`validate.py`, `apply.py`), `queue.py` is the queue (PostgreSQL or SQS), `worker.py` rescores
the queued students (`rescoring.py`: in process or through SageMaker) and `metrics.py` serves
the worker's metrics."""
