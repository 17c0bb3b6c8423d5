"""Reward functions for OpenRLHF's ``--reward.remote_url`` (a file path): ``math_reward.py``."""
