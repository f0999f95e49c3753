"""Prediction API (FastAPI) and the SageMaker container contract (/ping, /invocations).

The app is built by app.api.main.create_app; routes/ holds one router per concern, deps.py the
per-app services and the API-key dependency, schemas.py the bodies, queries.py every SQL
statement the API runs."""
