"""`--smoke`: a recipe, unchanged but for its model and size, on its family's tiny build, through
train, merge, eval, serve and real requests, with a checklist of the train-to-serve contract.

A broken recipe (a template with nothing to train, a stop token the server never sees, an adapter
vLLM refuses, tools the server cannot parse) fails here in about two minutes on a CPU, not after an
hour on a GPU. `genai.smoke.flow.run_smoke` is the entry point.
"""
