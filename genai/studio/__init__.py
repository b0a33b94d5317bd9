"""`genai studio`: a local web app over a runs folder (runs, compare, run pages, playground, launch).

FastAPI with server-rendered pages (Jinja2) and uPlot for the charts: the pages are plain HTML a test
drives in a real browser, the app is one process beside the runs it shows, and nothing is fetched from the
internet (uPlot is vendored under static/vendor). Modules: index (the runs table), compare (recipe diffs
and curves), files (safe paths), servers (the playground's one server and OpenAI targets), launcher
(`genai run` jobs), app (pages), api (JSON and event streams), start (the verb).
"""
