"""worldmodels: world models for reinforcement learning, built from swappable registered components."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # The API pulls in torch and every component; import it on first use, not on `import worldmodels`.
    if name in ("make_agent", "load_agent", "AgentRun"):
        from worldmodels import api

        return getattr(api, name)
    raise AttributeError(f"module 'worldmodels' has no attribute '{name}'")
