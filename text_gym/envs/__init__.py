"""The environments of text_gym, one per file, and the helpers that read their ``info``."""

from text_gym.envs.info import INFO_KEYS, UnscoredReplyWarning, references_from_info
from text_gym.envs.text_gen import TextGenEnv

__all__ = ["INFO_KEYS", "TextGenEnv", "UnscoredReplyWarning", "references_from_info"]
