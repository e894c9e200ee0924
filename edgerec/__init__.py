"""EdgeRec pipeline: contracts, configuration, CLI, behaviour simulator and runtimes."""

__version__ = "0.1.0"
