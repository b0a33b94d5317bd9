"""`genai sweep`: hyperparameter search over a recipe on Optuna. space (the swept settings: checks and
draws), trials (one trial = one ordinary `genai run`, watched for pruning), study (the sweep folder, its
study, resume), show (the trials table, the best run, importances, plots and a report page)."""
