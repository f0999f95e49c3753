"""Student Success Prediction System: prediction API, training job and schema."""

__version__ = "0.1.0"
