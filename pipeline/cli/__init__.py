"""`edgerec`: one sub-command per pipeline stage; every stage runs without Airflow. One module per command group:
`data` (raw zone, Spark, dbt, quality), `models` (train, gates, export, replay), `release` (deploy, channels,
serving), `run` (the main job, the UIs, alerts, config), `stack` (the at-scale twins); `base` holds the app and its
one error handler."""

from pipeline.cli import data, models, release, run, stack  # noqa: F401  (each registers its commands on the app)
from pipeline.cli.base import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
