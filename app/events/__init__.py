"""Events and their worker: POST /v1/events writes the facts and queues the students
(`validate.py`, `apply.py`), `queue.py` is the queue (PostgreSQL or SQS), `worker.py` rescores
(`scoring.py`: in process or SageMaker) and `metrics.py` serves its metrics."""
