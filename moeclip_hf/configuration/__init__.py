"""Configuration of MoECLIP models."""

from .configuration_moeclip import DOMAINS, MoECLIPConfig

__all__ = ["DOMAINS", "MoECLIPConfig"]
