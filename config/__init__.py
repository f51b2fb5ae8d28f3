"""The one typed settings object; the only module that reads the environment."""

from config.settings import Settings, child_environment, get_settings

__all__ = ["Settings", "child_environment", "get_settings"]
