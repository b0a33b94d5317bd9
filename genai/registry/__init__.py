"""Model registries: `genai register RUN` and `genai run`'s register stage.

A trained and evaluated run becomes a version in the MLflow Model Registry (mlflow_registry: eval
metrics and lineage as tags, the `champion` or `challenger` alias by champion's rule) and, asked to, a
model package in the SageMaker Model Registry (sm_registry: the vLLM container, the eval results as
model quality metrics, approval from the gate). registration ties them together.
"""
