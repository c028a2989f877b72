"""Measurement: ``suite bench`` by section, the GPU check, the precision study, and the reference
implementation's procedures transcribed step by step (the baseline the methods are timed and
tested against)."""
