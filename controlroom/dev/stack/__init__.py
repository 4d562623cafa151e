"""The local stack: real stand-ins for every cloud service, bound to 127.0.0.1."""

from controlroom.dev.stack.local import Endpoints, LocalStack, Tools, write_env_file
from controlroom.dev.stack.process import StackError

__all__ = ["Endpoints", "LocalStack", "StackError", "Tools", "write_env_file"]
