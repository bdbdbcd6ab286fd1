"""The environments of text_gym, one per file."""

from text_gym.envs.text_gen import TextGenEnv

__all__ = ["TextGenEnv"]
