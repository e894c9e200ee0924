"""The top of the pipeline: the stages index every DAG task calls (`stages`), the CLI (`cli`), and the tools that run
Airflow in-process (`orchestration`) and the UIs (`ui`). Nothing below imports it."""
