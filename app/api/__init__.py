"""Prediction API (FastAPI) and the SageMaker container contract (/ping, /invocations).

The app is built by app.api.main.create_app; routes/ holds one router per concern."""
