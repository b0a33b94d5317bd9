"""SageMaker: the same recipe as a training job (submit.py, client side; entry.py, container side),
job status/logs/stop/download (jobs.py) and a vLLM endpoint for the artifact (deploy.py)."""
