"""archmon core: configuration, domain types, errors, climate maths and the ``archmon`` command."""

from archmon.config import Config, load_config
from archmon.domain import RawMessage, Reading
from archmon.errors import ArchmonError, ConfigError, DecodeError

__all__ = ["ArchmonError", "Config", "ConfigError", "DecodeError", "RawMessage", "Reading", "__version__",
           "load_config"]

__version__ = "0.1.0"
