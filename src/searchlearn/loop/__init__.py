"""The search-and-learn loop: its config, learners, rounds, resumable stages, learning curve and initialization."""
