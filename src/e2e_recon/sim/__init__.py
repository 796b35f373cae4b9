"""Simulated subject: stimuli, an encoding model of visual cortex, and a writer that
produces a complete dataset in the real data's layout (``simulate_subject``)."""
